/**
 * Reading a run record (`application/vnd.nbtrack.run+json`, docs/record-schema.md).
 *
 * A record comes from a notebook file, and a notebook can come from anyone, so
 * everything here is parsed defensively into plain typed values: strings stay
 * strings (the views put them into the page as text only), numbers are checked,
 * and the MLflow link is kept only when it is an http(s) URL. This module does
 * not touch the DOM so that it can be unit-tested under node.
 */

/** The MIME type of a run record in a notebook output bundle. */
import { decodeNumber } from './format';
import { ISweep, parseSweep } from './sweep';

export const MIME_TYPE = 'application/vnd.nbtrack.run+json';

/**
 * The newest record schema this extension understands. Version 2 added
 * `panels`; version 1 records are still read, one chart per metric. Version 3
 * added point times, each panel's x axis (`panel_x`), metrics listed without
 * a curve and `metrics_omitted`; older records are drawn against the step.
 */
export const SCHEMA_VERSION = 3;

/** The x axes a chart can use: the step, time since the run started, clock time. */
export type XAxis = 'step' | 'relative' | 'wall';

/** Curves longer than this are cut: the writer decimates to far fewer points. */
const MAX_CURVE_POINTS = 20000;

/** Longest string kept from a record, so a hostile file cannot blow up the page. */
const MAX_TEXT = 10000;

export type RunStatus = 'FINISHED' | 'FAILED' | 'KILLED' | 'RUNNING' | 'UNKNOWN';
export type Goal = 'min' | 'max' | null;

export interface ICurve {
  /** Steps in increasing order. */
  readonly steps: number[];
  /** Values at those steps; NaN and infinities are kept as JavaScript numbers. */
  readonly values: number[];
  /** Seconds since the run started, one per point; null when the record has none. */
  readonly times: number[] | null;
}

export interface IMetricSummary {
  readonly last: number | null;
  readonly lastStep: number | null;
  readonly min: number | null;
  readonly max: number | null;
  readonly goal: Goal;
  readonly best: number | null;
  readonly bestStep: number | null;
  readonly count: number | null;
  readonly nonfinite: number;
  /** Null when the record has no curve (server listings omit them). */
  readonly curve: ICurve | null;
}

export interface IRunInfo {
  readonly id: string | null;
  readonly name: string;
  readonly experimentId: string | null;
  readonly experimentName: string | null;
  readonly status: RunStatus;
  readonly startTime: number | null;
  readonly endTime: number | null;
  readonly durationS: number | null;
}

export interface IRunError {
  readonly type: string;
  readonly message: string;
  readonly step: number | null;
}

export interface IRunRecord {
  readonly schema: number;
  readonly nbtrackVersion: string | null;
  readonly run: IRunInfo;
  readonly trackingUri: string | null;
  /** The run's page in the MLflow UI; only ever an http: or https: URL. */
  readonly uiUrl: string | null;
  readonly notebook: { readonly path: string | null; readonly cellId: string | null };
  /** Parameters in the record's order; a Map so that keys like `__proto__` stay data. */
  readonly params: ReadonlyMap<string, string>;
  readonly metrics: ReadonlyMap<string, IMetricSummary>;
  /**
   * The record's chart panels in display order, each a list of metric names:
   * every metric of `metrics` in exactly one panel. The writer grouped them
   * (docs/record-schema.md); readers draw them as they are.
   */
  readonly panels: ReadonlyArray<ReadonlyArray<string>>;
  /** The x axis each panel is drawn against by default, parallel to `panels`. */
  readonly panelX: ReadonlyArray<XAxis>;
  /** Metrics the run logged that the record leaves out (they are in MLflow). */
  readonly metricsOmitted: number;
  readonly error: IRunError | null;
  readonly sync: { readonly state: string; readonly pendingPoints: number } | null;
  /** A sweep's parent run: its trials, ranked (src/sweep.ts); null for other runs. */
  readonly sweep: ISweep | null;
}

export type ParseResult =
  | { readonly ok: true; readonly record: IRunRecord; readonly warnings: string[] }
  | { readonly ok: false; readonly error: string };

/**
 * Parse and validate a record as found in an output bundle (an object, or its
 * JSON text).
 *
 * Fails only when the data is not a record at all or is of a newer schema;
 * a malformed field is replaced by "unknown" and reported in `warnings`, so
 * that one bad value does not hide the rest of the run.
 */
export function parseRecord(data: unknown): ParseResult {
  let value = data;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch (err) {
      return { ok: false, error: `the record is not valid JSON (${String(err)})` };
    }
  }
  if (!isObject(value)) {
    return { ok: false, error: `a run record must be a JSON object, got ${describe(value)}` };
  }
  const schema = value['schema'];
  if (typeof schema !== 'number' || !Number.isInteger(schema) || schema < 1) {
    return {
      ok: false,
      error: `the record has no valid "schema" version (got ${describe(schema)})`
    };
  }
  if (schema > SCHEMA_VERSION) {
    return {
      ok: false,
      error:
        `this record uses schema ${schema}, newer than the ${SCHEMA_VERSION} this ` +
        'extension reads: upgrade nbtrack (pip install -U nbtrack) to display it'
    };
  }
  const warnings: string[] = [];
  const metrics = parseMetrics(value['metrics'], warnings);
  const layout = parsePanels(value['panels'], value['panel_x'], schema, metrics, warnings);
  const record: IRunRecord = {
    schema,
    nbtrackVersion: optText(value['nbtrack_version']),
    run: parseRun(value['run'], warnings),
    trackingUri: optText(value['tracking_uri']),
    uiUrl: safeHttpUrl(value['ui_url']),
    notebook: parseNotebook(value['notebook']),
    params: parseParams(value['params'], warnings),
    metrics,
    panels: layout.panels,
    panelX: layout.axes,
    metricsOmitted: optFinite(value['metrics_omitted']) ?? 0,
    error: parseError(value['error']),
    sync: parseSync(value['sync']),
    sweep: parseSweep(value['sweep'], warnings)
  };
  if (value['ui_url'] !== undefined && value['ui_url'] !== null && record.uiUrl === null) {
    warnings.push('ignored "ui_url": only http and https links are followed');
  }
  return { ok: true, record, warnings };
}

/**
 * The URL as a string when it parses as an absolute http: or https: URL,
 * otherwise null (so `javascript:`, `data:` and relative links never become links).
 */
export function safeHttpUrl(value: unknown): string | null {
  if (typeof value !== 'string' || value.length > MAX_TEXT) {
    return null;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
}


function parseRun(value: unknown, warnings: string[]): IRunInfo {
  if (!isObject(value)) {
    warnings.push('the record has no "run" object');
    value = {};
  }
  const run = value as Record<string, unknown>;
  const status = run['status'];
  const known: RunStatus[] = ['FINISHED', 'FAILED', 'KILLED', 'RUNNING'];
  return {
    id: optText(run['id']),
    name: optText(run['name']) ?? 'unnamed run',
    experimentId: optId(run['experiment_id']),
    experimentName: optText(run['experiment_name']),
    status: known.includes(status as RunStatus) ? (status as RunStatus) : 'UNKNOWN',
    startTime: optFinite(run['start_time']),
    endTime: optFinite(run['end_time']),
    durationS: optFinite(run['duration_s'])
  };
}

function parseNotebook(value: unknown): IRunRecord['notebook'] {
  const nb = isObject(value) ? value : {};
  return { path: optText(nb['path']), cellId: optText(nb['cell_id']) };
}

function parseParams(value: unknown, warnings: string[]): Map<string, string> {
  const params = new Map<string, string>();
  if (value === undefined || value === null) {
    return params;
  }
  if (!isObject(value)) {
    warnings.push('ignored "params": not an object');
    return params;
  }
  for (const [key, raw] of Object.entries(value)) {
    // MLflow stores params as strings; tolerate other scalars written by hand.
    if (typeof raw === 'string') {
      params.set(clip(key), clip(raw));
    } else if (typeof raw === 'number' || typeof raw === 'boolean' || raw === null) {
      params.set(clip(key), String(raw));
    } else {
      params.set(clip(key), clip(JSON.stringify(raw) ?? ''));
    }
  }
  return params;
}

function parseMetrics(value: unknown, warnings: string[]): Map<string, IMetricSummary> {
  const metrics = new Map<string, IMetricSummary>();
  if (value === undefined || value === null) {
    return metrics;
  }
  if (!isObject(value)) {
    warnings.push('ignored "metrics": not an object');
    return metrics;
  }
  for (const [key, raw] of Object.entries(value)) {
    if (!isObject(raw)) {
      warnings.push(`ignored metric ${JSON.stringify(clip(key, 200))}: not an object`);
      continue;
    }
    const goal = raw['goal'] === 'min' || raw['goal'] === 'max' ? raw['goal'] : null;
    metrics.set(clip(key), {
      last: decodeNumber(raw['last']),
      lastStep: optFinite(raw['last_step']),
      min: decodeNumber(raw['min']),
      max: decodeNumber(raw['max']),
      goal,
      best: goal === null ? null : decodeNumber(raw['best']),
      bestStep: goal === null ? null : optFinite(raw['best_step']),
      count: optFinite(raw['count']),
      nonfinite: optFinite(raw['nonfinite']) ?? 0,
      curve: parseCurve(raw['curve'], key, warnings)
    });
  }
  return metrics;
}

function parseCurve(value: unknown, key: string, warnings: string[]): ICurve | null {
  if (value === undefined || value === null) {
    return null;
  }
  const name = JSON.stringify(clip(key, 200));
  if (!isObject(value) || !Array.isArray(value['steps']) || !Array.isArray(value['values'])) {
    warnings.push(`ignored the curve of ${name}: it needs "steps" and "values" arrays`);
    return null;
  }
  const rawSteps = value['steps'] as unknown[];
  const rawValues = value['values'] as unknown[];
  if (rawSteps.length !== rawValues.length) {
    warnings.push(`the curve of ${name} has ${rawSteps.length} steps but ${rawValues.length} values`);
  }
  // Times are kept only when every point has one: a partial time axis would mislead.
  const rawTimes = Array.isArray(value['times']) ? (value['times'] as unknown[]) : null;
  let timed = rawTimes !== null && rawTimes.length === rawSteps.length;
  const n = Math.min(rawSteps.length, rawValues.length, MAX_CURVE_POINTS);
  const points: Array<[number, number, number]> = [];
  let sorted = true;
  for (let i = 0; i < n; i++) {
    const step = rawSteps[i];
    const v = decodeNumber(rawValues[i]);
    if (typeof step !== 'number' || !Number.isFinite(step) || v === null) {
      continue;
    }
    const t = timed ? rawTimes![i] : NaN;
    if (timed && (typeof t !== 'number' || !Number.isFinite(t))) {
      timed = false;
    }
    if (points.length > 0 && step < points[points.length - 1][0]) {
      sorted = false;
    }
    points.push([step, v, t as number]);
  }
  if (!sorted) {
    points.sort((a, b) => a[0] - b[0]);
  }
  return {
    steps: points.map(p => p[0]),
    values: points.map(p => p[1]),
    times: timed ? points.map(p => p[2]) : null
  };
}

/**
 * The record's panels, by the rule nbtrack.record.schema.record_panels follows
 * in Python: names that are not metrics of the record are skipped, a metric is
 * drawn in the first panel that names it, and a metric no panel names gets a
 * panel of its own, so nothing goes missing. A schema 1 record has no panels:
 * one per metric, which is no grouping at all.
 */
function parsePanels(
  value: unknown,
  rawAxes: unknown,
  schema: number,
  metrics: ReadonlyMap<string, IMetricSummary>,
  warnings: string[]
): { panels: string[][]; axes: XAxis[] } {
  const panels: string[][] = [];
  const axes: XAxis[] = [];
  const declared = Array.isArray(rawAxes) ? rawAxes : [];
  const placed = new Set<string>();
  if (value === undefined || value === null) {
    if (schema >= 2) {
      warnings.push('the record has no "panels": one chart per metric');
    }
  } else if (!Array.isArray(value)) {
    warnings.push('ignored "panels": not a list of lists of metric names');
  } else {
    let malformed = false;
    for (const [index, entry] of value.entries()) {
      if (!Array.isArray(entry)) {
        malformed = true;
        continue;
      }
      const kept: string[] = [];
      for (const raw of entry) {
        if (typeof raw !== 'string') {
          malformed = true;
          continue;
        }
        const name = clip(raw);
        if (metrics.has(name) && !placed.has(name)) {
          kept.push(name);
          placed.add(name);
        }
      }
      if (kept.length > 0) {
        panels.push(kept);
        const axis = declared[index];
        axes.push(axis === 'relative' || axis === 'wall' ? axis : 'step');
      }
    }
    if (malformed) {
      warnings.push('ignored parts of "panels" that are not lists of metric names');
    }
  }
  for (const name of metrics.keys()) {
    if (!placed.has(name)) {
      panels.push([name]);
      axes.push('step');
    }
  }
  return { panels, axes };
}

function parseError(value: unknown): IRunError | null {
  if (!isObject(value)) {
    return null;
  }
  return {
    type: optText(value['type']) ?? 'Error',
    message: optText(value['message']) ?? '',
    step: optFinite(value['step'])
  };
}

function parseSync(value: unknown): IRunRecord['sync'] {
  if (!isObject(value)) {
    return null;
  }
  return {
    state: optText(value['state']) ?? 'unknown',
    pendingPoints: optFinite(value['pending_points']) ?? 0
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optText(value: unknown): string | null {
  return typeof value === 'string' ? clip(value) : null;
}

/** Ids are strings in MLflow, but a hand-written record may use a number. */
function optId(value: unknown): string | null {
  if (typeof value === 'number' && Number.isFinite(value)) {
    return String(value);
  }
  return optText(value);
}

function optFinite(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function clip(text: string, limit = MAX_TEXT): string {
  return text.length > limit ? `${text.slice(0, limit)}…` : text;
}

function describe(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'an array';
  }
  return typeof value;
}
