import {readdirSync, readFileSync} from 'node:fs';
import {join} from 'node:path';

import {ROOT} from './promql.js';
import {parseYaml, parseYamlDocuments, type Yaml} from './yaml.js';

export {ROOT};
export type Obj = {[key: string]: Yaml};
/** Loosely typed view of a parsed manifest: tests navigate it freely and assert on what they find. */
export type Manifest = any;

export const readDeploy = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
export const loadYaml = (path: string): Manifest => parseYaml(readDeploy(path), path);

export const K8S_DIR = 'deploy/k8s';

export interface K8sFile {
  file: string;
  objects: Manifest[];
}

/** Every manifest of the kustomize base except kustomization.yaml itself. */
export function k8sFiles(): K8sFile[] {
  return readdirSync(join(ROOT, K8S_DIR))
    .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
    .sort()
    .map((file) => ({file, objects: parseYamlDocuments(readDeploy(`${K8S_DIR}/${file}`), file)}));
}

export function k8sObject(kind: string, name: string): Manifest {
  const found = k8sFiles()
    .flatMap((f) => f.objects)
    .find((o: Manifest) => o.kind === kind && o.metadata?.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in ${K8S_DIR}`);
  return found;
}

/** `--flag value` pairs of a container's args. */
export function argFlags(args: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  args.forEach((a, i) => {
    if (a.startsWith('--')) flags.set(a.slice(2), args[i + 1]?.startsWith('--') ? '' : (args[i + 1] ?? ''));
  });
  return flags;
}

/** Do a selector's labels all appear, with the same values, in `labels`? */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  return !!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}
