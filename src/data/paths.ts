/** Where datasets live on disk and where the official one comes from. */
import os from 'node:os';
import path from 'node:path';

export const CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz';
export const CIFAR10_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530';
/** The official tarball's name; a file of this name placed in the data dir is used instead of downloading. */
export const CIFAR10_TARBALL = 'cifar-10-binary.tar.gz';

/** `$DTRAIN_DATA_DIR`, else `~/.cache/dtrain/cifar10`. */
export function defaultDataDir(): string {
  const fromEnv = process.env.DTRAIN_DATA_DIR;
  if (fromEnv && fromEnv.trim() !== '') return path.resolve(fromEnv);
  return path.join(os.homedir(), '.cache', 'dtrain', 'cifar10');
}
