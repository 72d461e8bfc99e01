import path from 'node:path';

import {Flags} from '@oclif/core';

import {DtrainCommand} from '../../cli/base-command.js';
import {formatTable} from '../../cli/table.js';
import {
  classCounts,
  DATA_SOURCES,
  type DataSource,
  type Dataset,
  datasetDigest,
  defaultDataDir,
  findCifar10Dir,
  md5File,
  readProvenance,
  resolveDataset,
  validateCifar10Dir,
} from '../../data/index.js';

export interface DataInfo {
  data: DataSource;
  source: string;
  dir?: string;
  provenance?: {source: string; md5?: string; kind: string; createdAt: string};
  classNames: string[];
  splits: Record<'train' | 'test', {count: number; perClass: number[]; digest: string}>;
  files?: Array<{file: string; bytes: number; records: number; md5?: string}>;
}

export default class DataInfoCommand extends DtrainCommand {
  static override summary = 'Show what a dataset holds: images per split and per class, where it comes from.';
  static override description = 'For cifar10, also checks every batch file (whole records, labels 0-9) and lists them; --md5 adds each file\'s md5. The digest is a sha256 of labels + images: equal digests mean identical data.';
  static override examples = ['<%= config.bin %> data info', '<%= config.bin %> data info --data synthetic --json', '<%= config.bin %> data info --dir ./cifar --md5'];
  static override flags = {
    data: Flags.string({description: 'Dataset: cifar10 (on disk) or synthetic (generated).', options: [...DATA_SOURCES], default: 'cifar10'}),
    dir: Flags.string({char: 'd', aliases: ['data-dir'], description: 'Data dir for cifar10 (default $DTRAIN_DATA_DIR or ~/.cache/dtrain/cifar10).'}),
    seed: Flags.integer({description: 'Seed for synthetic.', default: 0}),
    md5: Flags.boolean({description: 'Compute the md5 of every batch file (cifar10).', default: false}),
  };

  async run(): Promise<DataInfo> {
    const {flags} = await this.parse(DataInfoCommand);
    const data = flags.data as DataSource;
    const dir = data === 'cifar10' ? path.resolve(flags.dir ?? defaultDataDir()) : undefined;
    const resolved = await resolveDataset({data, dir, seed: flags.seed});
    const split = (ds: Dataset) => ({count: ds.count, perClass: classCounts(ds), digest: datasetDigest(ds)});
    const info: DataInfo = {
      data,
      source: resolved.source,
      dir,
      classNames: [...resolved.train.classNames],
      splits: {train: split(resolved.train), test: split(resolved.test)},
    };
    if (dir) {
      const batchesDir = (await findCifar10Dir(dir))!;
      const {files} = await validateCifar10Dir(batchesDir);
      info.provenance = await readProvenance(batchesDir);
      info.files = [];
      for (const f of files) info.files.push({file: f.file, bytes: f.bytes, records: f.records, ...(flags.md5 ? {md5: await md5File(f.file)} : {})});
    }

    this.log(`Dataset: ${info.source}`);
    if (info.provenance) this.log(`From: ${info.provenance.source} (${info.provenance.kind}, ${info.provenance.createdAt}${info.provenance.md5 ? `, tarball md5 ${info.provenance.md5}` : ''})`);
    this.log('');
    const rows: Array<Array<string | number>> = info.classNames.map((name, c) => [`${c} ${name}`, info.splits.train.perClass[c], info.splits.test.perClass[c]]);
    rows.push(['total', info.splits.train.count, info.splits.test.count]);
    this.log(formatTable(['Class', 'Train', 'Test'], rows));
    if (info.files) {
      this.log('');
      const header = ['File', 'Records', 'Bytes', ...(flags.md5 ? ['md5'] : [])];
      this.log(formatTable(header, info.files.map((f) => [path.basename(f.file), f.records, f.bytes, ...(f.md5 ? [f.md5] : [])])));
    }
    this.log('');
    this.log(`digest (sha256 of labels+images): train ${info.splits.train.digest.slice(0, 16)}…  test ${info.splits.test.digest.slice(0, 16)}…`);
    return info;
  }
}
