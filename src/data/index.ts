/** The data module's public surface: format, sources, download, augmentation. */
export {
  CHANNELS,
  CIFAR10_CLASSES,
  CIFAR10_SUBDIR,
  type Cifar10FileInfo,
  classCounts,
  type Dataset,
  decodeRecords,
  encodeRecords,
  findCifar10Dir,
  IMAGE_BYTES,
  IMAGE_SIZE,
  loadCifar10,
  RECORD_BYTES,
  type Split,
  takeFirst,
  validateCifar10Dir,
  writeCifar10Dir,
} from './cifar10.js';
export {type AugmentParams, type Batch, makeBatch, type MakeBatchOptions, PAD_VALUE, PADDING} from './augment.js';
export {datasetDigest, md5File} from './checksum.js';
export {extractCifar10Tarball, type Provenance, readProvenance} from './extract.js';
export {ChecksumError, classifyNetworkError, downloadFile, type DownloadOptions, type DownloadResult, NetworkError, type NetworkErrorKind} from './fetch.js';
export {ensureCifar10, type EnsureCifar10Options, type EnsureCifar10Result} from './install.js';
export {CIFAR10_MD5, CIFAR10_TARBALL, CIFAR10_URL, defaultDataDir} from './paths.js';
export {formatBytes, formatProgress, type TransferProgress} from './progress.js';
export {DATA_SOURCES, type DataSource, resolveDataset, type ResolvedDataset, type ResolveDatasetOptions, SYNTHETIC_DEFAULTS} from './resolve.js';
export {generateSynthetic, SYNTHETIC_LABEL_NOISE, type SyntheticOptions} from './synthetic.js';
