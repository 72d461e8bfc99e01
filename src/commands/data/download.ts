import {Flags} from '@oclif/core';

import {DtrainCommand} from '../../cli/base-command.js';
import {CIFAR10_MD5, CIFAR10_TARBALL, CIFAR10_URL, defaultDataDir, ensureCifar10, type EnsureCifar10Result, formatProgress, type TransferProgress} from '../../data/index.js';

export default class DataDownloadCommand extends DtrainCommand {
  static override summary = 'Download CIFAR-10 (binary version), verify its md5 and unpack it into the data dir.';
  static override description = `Resumable: an interrupted download keeps DIR/${CIFAR10_TARBALL}.part and the next run continues it (HTTP Range). The md5 is checked before anything is extracted, and extraction is atomic, so the data dir never holds half a dataset. Does nothing when a valid dataset is already there (--force replaces it).
Offline? Get ${CIFAR10_TARBALL} another way and pass --from-file PATH (or put it into the data dir), or train on generated data with --data synthetic.
The data dir defaults to $DTRAIN_DATA_DIR, else ~/.cache/dtrain/cifar10.`;
  static override examples = [
    '<%= config.bin %> data download',
    '<%= config.bin %> data download --dir ./cifar',
    `<%= config.bin %> data download --from-file ~/Downloads/${CIFAR10_TARBALL}`,
    '<%= config.bin %> data download --url http://mirror.local/cifar-10-binary.tar.gz --json',
  ];
  static override flags = {
    dir: Flags.string({char: 'd', aliases: ['data-dir'], description: 'Data dir (default $DTRAIN_DATA_DIR or ~/.cache/dtrain/cifar10).'}),
    url: Flags.string({description: 'Where to download the tarball from.', default: CIFAR10_URL}),
    md5: Flags.string({description: 'Expected md5 of the tarball (hex).', default: CIFAR10_MD5}),
    'from-file': Flags.string({description: 'Use this local tarball instead of downloading (md5 still verified).'}),
    force: Flags.boolean({description: 'Fetch and replace even when a valid dataset is already there.', default: false}),
    'keep-tarball': Flags.boolean({description: 'Keep the downloaded .tar.gz in the data dir after extracting.', default: false}),
    timeout: Flags.integer({description: 'Seconds without data before an attempt fails.', default: 30, min: 1}),
    retries: Flags.integer({description: 'How often to resume a transfer that broke off.', default: 5, min: 0}),
  };

  async run(): Promise<EnsureCifar10Result> {
    const {flags} = await this.parse(DataDownloadCommand);
    const dir = flags.dir ?? defaultDataDir();
    const json = this.jsonEnabled();
    const tty = Boolean(process.stderr.isTTY);
    let progressShown = false;
    const onProgress = (p: TransferProgress): void => {
      if (json) return;
      // A TTY gets one line rewritten in place; a log gets a line per report (reports are throttled).
      if (tty) {
        process.stderr.write(`\r\x1b[2Kdownloading ${formatProgress(p)}${p.done ? '\n' : ''}`);
        progressShown = !p.done;
      } else {
        this.progress(`downloading ${formatProgress(p)}`);
      }
    };
    const onStep = (m: string): void => {
      if (progressShown && tty) process.stderr.write('\n');
      progressShown = false;
      this.progress(m);
    };
    if (!flags['from-file']) this.progress(`dtrain: data dir ${dir}`);
    const result = await ensureCifar10({
      dir,
      url: flags.url,
      md5: flags.md5,
      fromFile: flags['from-file'],
      force: flags.force,
      keepTarball: flags['keep-tarball'],
      timeoutMs: flags.timeout * 1000,
      retries: flags.retries,
      onProgress,
      progressIntervalMs: tty ? 250 : 5000,
      onStep,
    });
    const counts = `${result.train.toLocaleString('en-US')} train + ${result.test.toLocaleString('en-US')} test images`;
    if (result.status === 'present') {
      this.log(`CIFAR-10 is already in ${result.batchesDir} (${counts}); nothing to do (--force replaces it).`);
    } else {
      this.log(`CIFAR-10 ready in ${result.batchesDir} (${counts}, md5 ${result.md5} verified, from ${result.source}).`);
    }
    return result;
  }
}
