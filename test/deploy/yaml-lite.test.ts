import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {readdirSync} from 'node:fs';
import {join} from 'node:path';
import {test} from 'node:test';

import {readDeploy, ROOT} from './helpers.js';
import {parseYaml, parseYamlDocuments} from './yaml-lite.js';

/** Every YAML file under deploy/, relative to the repository root. */
function deployYamlFiles(dir = 'deploy'): string[] {
  return readdirSync(join(ROOT, dir), {withFileTypes: true}).flatMap((e) =>
    e.isDirectory() ? deployYamlFiles(`${dir}/${e.name}`) : /\.ya?ml$/.test(e.name) ? [`${dir}/${e.name}`] : [],
  );
}

test('yaml-lite: the subset deploy/ uses', () => {
  const text = [
    '# comment',
    'a: 1',
    'b: "x: #not a comment"   # a comment',
    "c: 'it''s'",
    'd: [a, "b c", 3]',
    'e: {k: v, n: 2}',
    'f:',
    '  - name: one',
    '    port: 7400',
    '  - plain',
    '  -',
    '    nested: true',
    'g:',
    '- same-indent',
    'h: |',
    '  line 1',
    '    indented',
    'i: ~',
    'j: http://x:1/y',
    'k: 1e-3',
  ].join('\n');
  assert.deepEqual(parseYaml(text), {
    a: 1,
    b: 'x: #not a comment',
    c: "it's",
    d: ['a', 'b c', 3],
    e: {k: 'v', n: 2},
    f: [{name: 'one', port: 7400}, 'plain', {nested: true}],
    g: ['same-indent'],
    h: 'line 1\n  indented\n',
    i: null,
    j: 'http://x:1/y',
    k: 0.001,
  });
  assert.equal(parseYamlDocuments('a: 1\n---\nb: 2\n').length, 2);
  assert.throws(() => parseYaml('a: b\n  c\n'), /multi-line scalars/);
  assert.throws(() => parseYaml('a: &x 1\n'), /unsupported/);
  assert.throws(() => parseYaml('a: 1\na: 2\n'), /duplicate key/);
});

const pyyaml = spawnSync('python3', ['-c', 'import yaml'], {encoding: 'utf8'}).status === 0;

test('yaml-lite reads every deploy/ YAML file exactly as PyYAML does', {skip: pyyaml ? false : 'python3 with PyYAML not found (apt-get install python3-yaml) — cross-check skipped'}, () => {
  const files = deployYamlFiles();
  assert.ok(files.length >= 15, files.join(' '));
  const script = 'import json, sys, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))';
  for (const f of files) {
    const text = readDeploy(f);
    const py = spawnSync('python3', ['-c', script], {input: text, encoding: 'utf8'});
    assert.equal(py.status, 0, `${f}: ${py.stderr}`);
    assert.deepEqual(parseYamlDocuments(text, f), JSON.parse(py.stdout), f);
  }
});
