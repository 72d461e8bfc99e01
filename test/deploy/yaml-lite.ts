/**
 * A small YAML reader for the deploy/ files, because no YAML package is installed in this
 * project (add `yaml` as a devDependency and swap `parseYamlDocuments` for
 * `parseAllDocuments(text).map((d) => d.toJS())` when one is). It reads the subset those files use —
 * block maps and sequences, plain / single / double-quoted scalars, one-line flow `[…]` and `{…}`,
 * `|` literal blocks, comments, `---` — and throws on anything else rather than guess.
 * yaml-lite.test.ts checks it against PyYAML where python3-yaml exists.
 */

export type Yaml = null | boolean | number | string | Yaml[] | {[key: string]: Yaml};

interface Line {
  n: number;
  indent: number;
  text: string;
}

/** Cuts a trailing comment: `#` at the start or after whitespace, outside quotes. */
function stripComment(s: string): string {
  let quote = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]))) {
      return s.slice(0, i).trimEnd();
    }
  }
  return s.trimEnd();
}

/** Splits on `sep` outside quotes and brackets (flow collections, `key: value`). */
function splitTop(s: string, sep: string, limit = Infinity): string[] {
  const parts: string[] = [];
  let [depth, quote, start] = [0, '', 0];
  for (let i = 0; i < s.length && parts.length < limit - 1; i++) {
    const c = s[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    else if (depth === 0 && s.startsWith(sep, i) && (sep !== ':' || i + 1 === s.length || s[i + 1] === ' ')) {
      parts.push(s.slice(start, i));
      start = i + sep.length;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

function scalar(raw: string, where: string): Yaml {
  const s = raw.trim();
  if (s.startsWith('"')) {
    if (!s.endsWith('"') || s.length < 2) throw new Error(`${where}: unterminated or multi-line "string"`);
    return JSON.parse(s) as string;
  }
  if (s.startsWith("'")) {
    if (!s.endsWith("'") || s.length < 2) throw new Error(`${where}: unterminated or multi-line 'string'`);
    return s.slice(1, -1).replaceAll("''", "'");
  }
  if (s.startsWith('[')) {
    const inner = s.slice(1, -1).trim();
    return inner ? splitTop(inner, ',').map((x) => scalar(x, where)) : [];
  }
  if (s.startsWith('{')) {
    const inner = s.slice(1, -1).trim();
    const entries = inner ? splitTop(inner, ',').map((kv) => splitTop(kv, ':', 2)) : [];
    return Object.fromEntries(entries.map(([k, v]) => [String(scalar(k, where)), v === undefined ? null : scalar(v, where)]));
  }
  if (/^[|>]/.test(s) || /^[&*!]/.test(s)) throw new Error(`${where}: unsupported YAML (${s.slice(0, 10)})`);
  if (s === '' || s === '~' || s === 'null') return null;
  if (s === 'true' || s === 'false') return s === 'true';
  if (/^[-+]?(\d+|\d*\.\d+(e[-+]?\d+)?|\d+e[-+]?\d+)$/i.test(s)) return Number(s);
  return s;
}

class Reader {
  private readonly lines: Line[];
  private i = 0;

  constructor(
    private readonly raw: string[],
    private readonly name: string,
    private readonly offset: number,
  ) {
    this.lines = [];
    raw.forEach((r, k) => {
      const text = stripComment(r);
      if (text.trim()) this.lines.push({n: k, indent: text.length - text.trimStart().length, text: text.trim()});
    });
  }

  private where(l: Line): string {
    return `${this.name}:${l.n + this.offset + 1}`;
  }

  document(): Yaml {
    if (!this.lines.length) return null;
    const v = this.block(this.lines[0].indent);
    if (this.i < this.lines.length) throw new Error(`${this.where(this.lines[this.i])}: unexpected indentation`);
    return v;
  }

  private block(indent: number): Yaml {
    const l = this.lines[this.i];
    if (l.text === '-' || l.text.startsWith('- ')) return this.seq(indent);
    if (splitTop(l.text, ':', 2).length === 2) return this.map(indent);
    this.i++;
    return scalar(l.text, this.where(l));
  }

  private seq(indent: number): Yaml[] {
    const out: Yaml[] = [];
    for (let l = this.lines[this.i]; l && l.indent === indent && (l.text === '-' || l.text.startsWith('- ')); l = this.lines[this.i]) {
      const rest = l.text.slice(1).trimStart();
      if (!rest) {
        this.i++;
        out.push(this.nested(indent));
      } else {
        // "- key: v" continues as a block at the column of "key".
        this.lines[this.i] = {n: l.n, indent: indent + (l.text.length - rest.length), text: rest};
        out.push(this.block(this.lines[this.i].indent));
      }
    }
    return out;
  }

  /** The value of a `key:` or `-` with nothing after it: a deeper block, a same-indent sequence (maps only), or null. */
  private nested(indent: number, sameIndentSeq = false): Yaml {
    const next = this.lines[this.i];
    if (next && next.indent > indent) return this.block(next.indent);
    if (next && sameIndentSeq && next.indent === indent && (next.text === '-' || next.text.startsWith('- '))) return this.seq(indent);
    return null;
  }

  private map(indent: number): {[key: string]: Yaml} {
    const out: {[key: string]: Yaml} = {};
    for (let l = this.lines[this.i]; l && l.indent === indent && !(l.text === '-' || l.text.startsWith('- ')); l = this.lines[this.i]) {
      const [k, v] = splitTop(l.text, ':', 2);
      if (v === undefined) throw new Error(`${this.where(l)}: expected "key: value"`);
      const key = String(scalar(k, this.where(l)));
      if (key in out) throw new Error(`${this.where(l)}: duplicate key ${key}`);
      this.i++;
      const value = v.trim();
      if (value === '|' || value === '|-') out[key] = this.literal(l, indent, value === '|');
      else if (value === '') out[key] = this.nested(indent, true);
      else {
        out[key] = scalar(value, this.where(l));
        const next = this.lines[this.i];
        if (next && next.indent > indent) throw new Error(`${this.where(next)}: multi-line scalars are not supported`);
      }
    }
    return out;
  }

  /** `|` block: raw lines deeper than the key, the common indentation removed. */
  private literal(keyLine: Line, indent: number, keepFinalNewline: boolean): string {
    const body: string[] = [];
    let k = keyLine.n + 1;
    for (; k < this.raw.length; k++) {
      const r = this.raw[k];
      if (r.trim() && r.length - r.trimStart().length <= indent) break;
      body.push(r);
    }
    while (body.length && !body[body.length - 1].trim()) body.pop();
    const cut = Math.min(...body.filter((b) => b.trim()).map((b) => b.length - b.trimStart().length));
    while (this.i < this.lines.length && this.lines[this.i].n < k) this.i++;
    const text = body.map((b) => b.slice(cut)).join('\n');
    return keepFinalNewline ? `${text}\n` : text;
  }
}

/** Every document of a YAML stream (`---` separated), as plain JSON values. */
export function parseYamlDocuments(text: string, name = 'yaml'): Yaml[] {
  const raw = text.split(/\r?\n/);
  const docs: Yaml[] = [];
  let start = 0;
  for (let k = 0; k <= raw.length; k++) {
    if (k === raw.length || /^---\s*(#.*)?$/.test(raw[k])) {
      const doc = new Reader(raw.slice(start, k), name, start).document();
      if (doc !== null) docs.push(doc);
      start = k + 1;
    }
  }
  return docs;
}

export function parseYaml(text: string, name = 'yaml'): Yaml {
  const docs = parseYamlDocuments(text, name);
  if (docs.length !== 1) throw new Error(`${name}: expected one YAML document, found ${docs.length}`);
  return docs[0];
}
