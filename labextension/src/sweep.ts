/**
 * A sweep's trials (`sweep` in a parent run's record, docs/record-schema.md):
 * parsed defensively like the rest of a record, and the table of the trials
 * ranked by the sweep's metric, the best marked, with its params ready to
 * copy (the chart of every trial's curve is `trialsChart` in charts.ts). Parsing is DOM-free (unit
 * tested under node); `sweepView` builds nodes with text only.
 */
import { decodeNumber } from './format';

/** Trials listed at most, whatever a (hand-written) record holds. */
const MAX_TRIALS = 200;
const MAX_TEXT = 2000;
/**
 * Param columns of the trials table, in the order trials name them: a sweep varies a few, and
 * a record from anyone must not make a table of every name of every trial.
 */
export const MAX_PARAM_COLUMNS = 24;
const STATES = ['RUNNING', 'COMPLETE', 'PRUNED', 'FAILED', 'KILLED'];

export interface ITrial {
  readonly number: number;
  readonly name: string;
  readonly runId: string | null;
  readonly state: string;
  readonly value: number | null;
  /** Python literals (repr) by name, in the record's order. */
  readonly params: ReadonlyMap<string, string>;
  readonly curve: { readonly steps: number[]; readonly values: number[] } | null;
}

export interface ISweep {
  readonly study: string;
  readonly sampler: string;
  readonly metric: string | null;
  readonly goal: 'min' | 'max' | null;
  readonly objective: 'last' | 'best';
  readonly best: number | null;
  /** Ranked by the writer: the best first. */
  readonly trials: readonly ITrial[];
  readonly trialsOmitted: number;
}

/** The record's `sweep` section, or null when it has none (or it is unreadable). */
export function parseSweep(value: unknown, warnings: string[]): ISweep | null {
  if (value === undefined || value === null) {
    return null;
  }
  if (!isObject(value) || !Array.isArray(value['trials'])) {
    warnings.push('the sweep section is not readable; its trials are not shown');
    return null;
  }
  const trials: ITrial[] = [];
  for (const raw of value['trials'].slice(0, MAX_TRIALS)) {
    const trial = parseTrial(raw);
    if (trial === null) {
      warnings.push('a trial of the sweep is not readable; it is left out');
    } else {
      trials.push(trial);
    }
  }
  const goal = value['goal'];
  const best = value['best'];
  const omitted = value['trials_omitted'];
  return {
    study: text(value['study']),
    sampler: text(value['sampler']),
    metric: typeof value['metric'] === 'string' ? text(value['metric']) : null,
    goal: goal === 'min' || goal === 'max' ? goal : null,
    objective: value['objective'] === 'best' ? 'best' : 'last',
    best: typeof best === 'number' && Number.isInteger(best) ? best : null,
    trials,
    trialsOmitted:
      (typeof omitted === 'number' && omitted >= 0 ? omitted : 0) +
      Math.max(0, value['trials'].length - MAX_TRIALS)
  };
}

function parseTrial(value: unknown): ITrial | null {
  if (!isObject(value) || typeof value['number'] !== 'number') {
    return null;
  }
  const params = new Map<string, string>();
  if (isObject(value['params'])) {
    for (const [key, param] of Object.entries(value['params'])) {
      if (typeof param === 'string') {
        params.set(text(key), text(param));
      }
    }
  }
  const state = typeof value['state'] === 'string' ? value['state'] : '';
  return {
    number: value['number'],
    name: text(value['name']),
    runId: typeof value['run_id'] === 'string' ? text(value['run_id']) : null,
    state: STATES.includes(state) ? state : 'FAILED',
    value: decodeNumber(value['value']),
    params,
    curve: parseCurve(value['curve'])
  };
}

function parseCurve(value: unknown): ITrial['curve'] {
  if (!isObject(value) || !Array.isArray(value['steps']) || !Array.isArray(value['values'])) {
    return null;
  }
  const steps: number[] = [];
  const values: number[] = [];
  const n = Math.min(value['steps'].length, value['values'].length, 5000);
  for (let i = 0; i < n; i++) {
    const step = value['steps'][i];
    const point = decodeNumber(value['values'][i]);
    if (typeof step === 'number' && Number.isFinite(step) && point !== null) {
      steps.push(step);
      values.push(point);
    }
  }
  return steps.length ? { steps, values } : null;
}

// A Python identifier, and a value made only of literals (numbers, strings, True, False, None,
// in tuples or lists): what a sweep's params are (repr writes them), so that nothing else from
// a record is offered as code to paste. Each token is read one way only (a space at a time, a
// number whole), so that no value takes exponential time; and no triple quote, which Python
// reads as one string where this reads two.
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TRIPLE_QUOTE = /'''|"""/;
const LITERAL =
  /^(?:\s|[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d+)?(?![\d_.])|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|True|False|None|[()[\],])*$/;

/**
 * The best trial's params as the cell's assignments and as a dict; null without one, or when
 * a name or a value is not what a sweep writes (a record from anyone).
 */
export function bestParams(sweep: ISweep): { lines: string; dict: string } | null {
  const best = sweep.trials.find(t => t.number === sweep.best);
  if (!best || best.params.size === 0) {
    return null;
  }
  const entries = [...best.params.entries()];
  const pastable = ([k, v]: [string, string]) =>
    IDENTIFIER.test(k) && !TRIPLE_QUOTE.test(v) && LITERAL.test(v);
  if (!entries.every(pastable)) {
    return null;
  }
  return {
    lines: entries.map(([k, v]) => `${k} = ${v}`).join('\n'),
    dict: '{' + entries.map(([k, v]) => `${JSON.stringify(k)}: ${v}`).join(', ') + '}'
  };
}

/** Header and rows of the trials table: number, state, value, then each param (the first
 * `MAX_PARAM_COLUMNS`). */
export function trialsTable(sweep: ISweep): { header: string[]; rows: string[][] } {
  const names = [...new Set(sweep.trials.flatMap(t => [...t.params.keys()]))].slice(
    0,
    MAX_PARAM_COLUMNS
  );
  const arrow = sweep.goal === 'min' ? ' ↓' : sweep.goal === 'max' ? ' ↑' : '';
  const header = ['trial', 'state', `${sweep.metric ?? 'value'} (${sweep.objective})${arrow}`, ...names];
  const rows = sweep.trials.map(t => [
    t.number === sweep.best ? `#${t.number} ★ best` : `#${t.number}`,
    t.state,
    t.value === null ? '–' : String(Number(t.value.toPrecision(4))),
    ...names.map(n => t.params.get(n) ?? '–')
  ]);
  return { header, rows };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string {
  const s = typeof value === 'string' ? value : String(value ?? '');
  return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) + '…' : s;
}
