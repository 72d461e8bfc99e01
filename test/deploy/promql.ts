/**
 * Every PromQL expression dtrain ships — dashboard panels, dashboard variables, alert rules — with
 * where it came from. grafana.test.ts checks each one offline (known metrics, balanced brackets);
 * test/metrics/prometheus-e2e.test.ts asks a real Prometheus that scraped a short `dtrain run` for
 * each one (`toEvaluable()`, and `conditionOperands()` for alert conditions).
 */
import {readdirSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';

import {parseYaml, type Yaml} from './yaml.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DASHBOARD_DIR = join(ROOT, 'deploy/grafana/dashboards');
export const RULES_DIR = join(ROOT, 'deploy/prometheus/rules');

export interface ShippedExpr {
  /** panel: a dashboard target; variable: a label_values() query (not PromQL, names checked only); rule: an alert/recording rule. */
  kind: 'panel' | 'variable' | 'rule';
  /** Human-readable origin, e.g. `dtrain.json panel "Loss" A`. */
  where: string;
  expr: string;
}

type Obj = {[key: string]: Yaml};
const asObj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const asArr = (v: unknown): Yaml[] => (Array.isArray(v) ? v : []);

export function dashboardExpressions(dashboard: unknown, file = 'dashboard'): ShippedExpr[] {
  const d = asObj(dashboard);
  const out: ShippedExpr[] = [];
  for (const v of asArr(asObj(d.templating).list).map(asObj)) {
    const q = typeof v.query === 'string' ? v.query : asObj(v.query).query;
    if (v.type === 'query' && typeof q === 'string') out.push({kind: 'variable', where: `${file} variable $${String(v.name)}`, expr: q});
  }
  for (const p of asArr(d.panels).map(asObj)) {
    for (const t of asArr(p.targets).map(asObj)) out.push({kind: 'panel', where: `${file} panel "${String(p.title)}" ${String(t.refId)}`, expr: String(t.expr)});
  }
  return out;
}

export function ruleExpressions(rules: unknown, file = 'rules'): ShippedExpr[] {
  return asArr(asObj(rules).groups)
    .map(asObj)
    .flatMap((g) => asArr(g.rules).map(asObj))
    .map((r) => ({kind: 'rule' as const, where: `${file} ${String(r.alert ?? r.record)}`, expr: String(r.expr)}));
}

/** All dashboards in deploy/grafana/dashboards and all rule files in deploy/prometheus/rules. */
export function shippedPromQL(): ShippedExpr[] {
  const dashboards = readdirSync(DASHBOARD_DIR)
    .filter((f) => f.endsWith('.json'))
    .flatMap((f) => dashboardExpressions(JSON.parse(readFileSync(join(DASHBOARD_DIR, f), 'utf8')), f));
  const rules = readdirSync(RULES_DIR)
    .filter((f) => /\.ya?ml$/.test(f))
    .flatMap((f) => ruleExpressions(parseYaml(readFileSync(join(RULES_DIR, f), 'utf8'), f), f));
  return [...dashboards, ...rules];
}

/** Replaces Grafana's variables so Prometheus can evaluate a panel expression as-is. */
export function toEvaluable(expr: string, vars: {rateInterval?: string; worker?: string} = {}): string {
  return expr.replaceAll('$__rate_interval', vars.rateInterval ?? '1m').replaceAll('$worker', vars.worker ?? '.*');
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
/** Aggregations may put `by (…)` before their parenthesis: `sum by (le) (…)`. */
const AGGREGATIONS = new Set(['sum', 'avg', 'min', 'max', 'count', 'group', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values']);
/** Keywords followed by a label list in parentheses, which holds label names, not metrics. */
const LABEL_LIST = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * For each character of a PromQL expression: whether it lies in a string literal (quotes
 * included); `unterminated` when the last literal never closes.
 */
function inString(expr: string): boolean[] & {unterminated?: boolean} {
  const mask: boolean[] & {unterminated?: boolean} = new Array<boolean>(expr.length).fill(false);
  let quote = '';
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (quote) {
      mask[i] = true;
      if (c === '\\') mask[++i] = true;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'" || c === '`') {
      quote = c;
      mask[i] = true;
    }
  }
  mask.unterminated = quote !== '';
  return mask;
}

/** Strings, `{…}` matchers and `[…]` ranges removed (label names and durations are not metrics). */
function skeleton(expr: string): string {
  const quoted = inString(expr);
  let out = '';
  let [brace, bracket] = [0, 0];
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (quoted[i]) {
      out += ' ';
      continue;
    }
    if (c === '{') brace++;
    else if (c === '}') brace--;
    else if (c === '[') bracket++;
    else if (c === ']') bracket--;
    else if (brace === 0 && bracket === 0) out += c;
    if (c === '{' || c === '[') out += ' ';
  }
  return out;
}

/** Metric names an expression (or a Grafana label_values() query) selects. */
export function metricNamesIn(expr: string): string[] {
  const lv = /^\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*\w+\s*\)\s*$/.exec(expr);
  if (lv) return [lv[1]];
  const s = skeleton(expr);
  const names: string[] = [];
  const re = /\$?[A-Za-z_:][A-Za-z0-9_:]*/g;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    const word = m[0];
    const followedByParen = s.slice(m.index + word.length).trimStart().startsWith('(');
    if (LABEL_LIST.has(word) && followedByParen) re.lastIndex = s.indexOf(')', m.index) + 1;
    else if (!word.startsWith('$') && !KEYWORDS.has(word.toLowerCase()) && !AGGREGATIONS.has(word) && !followedByParen) names.push(word);
  }
  return names;
}

/** Balanced (), {} and [] outside strings; returns a problem or undefined. */
export function bracketProblem(expr: string): string | undefined {
  const pairs: Record<string, string> = {')': '(', '}': '{', ']': '['};
  const stack: string[] = [];
  const quoted = inString(expr);
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (quoted[i]) continue;
    if ('({['.includes(c)) stack.push(c);
    else if (c in pairs && stack.pop() !== pairs[c]) return `unbalanced ${c} at ${i}`;
  }
  if (quoted.unterminated) return 'unterminated string';
  return stack.length ? `unclosed ${stack.join('')}` : undefined;
}

const SCALAR = /^[+-]?(?:\d+(?:\.\d*)?(?:e[+-]?\d+)?|inf|nan)$/i;
/** A matching modifier at the start of an operand (`on()`, `ignoring(x)`, `group_left(y)`, `bool`), left there by the split. */
const LEADING_MODIFIER = /^\s*(?:bool\b|(?:on|ignoring|group_left|group_right)\s*\([^)]*\))\s*/i;

/**
 * The vector operands of an alert condition: the expression split at its top-level comparison and
 * set operators (==, !=, <, >, <=, >=, and, or, unless), scalar thresholds dropped. A healthy run
 * fires no alert, so the whole expression rightly returns nothing; each operand returning data
 * proves the alert watches series that exist (an operand that selects nothing can never fire).
 */
export function conditionOperands(expr: string): string[] {
  const parts: string[] = [];
  const quoted = inString(expr);
  let [depth, start] = [0, 0];
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (quoted[i]) continue;
    if ('({['.includes(c)) depth++;
    else if (')}]'.includes(c)) depth--;
    if (depth !== 0) continue;
    const op = /^(?:==|!=|<=|>=|<|>|(?<![\w:])(?:and|or|unless)(?![\w:]))/i.exec(expr.slice(i))?.[0];
    if (!op) continue;
    parts.push(expr.slice(start, i));
    start = i + op.length;
    i = start - 1;
  }
  parts.push(expr.slice(start));
  return parts
    .map((p) => {
      let s = p;
      for (let m = LEADING_MODIFIER.exec(s); m; m = LEADING_MODIFIER.exec(s)) s = s.slice(m[0].length);
      return s.trim();
    })
    .filter((p) => p !== '' && !SCALAR.test(p));
}
