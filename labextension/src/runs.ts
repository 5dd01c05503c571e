/**
 * The runs recorded in a notebook, and how several of them differ. DOM-free:
 * it reads cells as plain data so that tests can feed it nbformat JSON.
 */
import { IRunRecord, MIME_TYPE, parseRecord } from './record';

/** One cell as far as finding records goes. */
export interface ICellOutputs {
  readonly index: number;
  readonly id: string | null;
  /** Each output's MIME bundle (`data` of display_data / execute_result). */
  readonly bundles: Iterable<Readonly<Record<string, unknown>>>;
}

export interface INotebookRun {
  readonly record: IRunRecord;
  readonly cellIndex: number;
  readonly cellId: string | null;
  /** A stable key for selection: the run id, or the cell position for offline runs. */
  readonly key: string;
}

/**
 * Every valid record in the cells' outputs, newest first (runs without a start
 * time last, in notebook order). A run shown twice (e.g. a record displayed
 * again) is listed once, at its last position in the notebook.
 */
export function collectRuns(cells: Iterable<ICellOutputs>): INotebookRun[] {
  const byKey = new Map<string, INotebookRun>();
  for (const cell of cells) {
    let n = 0;
    for (const bundle of cell.bundles) {
      if (!(MIME_TYPE in bundle)) {
        continue;
      }
      const parsed = parseRecord(bundle[MIME_TYPE]);
      if (!parsed.ok) {
        continue;
      }
      const record = parsed.record;
      const key = record.run.id ?? `cell:${cell.id ?? cell.index}:${n}`;
      n += 1;
      byKey.delete(key);
      byKey.set(key, { record, cellIndex: cell.index, cellId: cell.id, key });
    }
  }
  const runs = [...byKey.values()];
  const position = new Map(runs.map((r, i) => [r, i]));
  return runs.sort((a, b) => {
    const ta = a.record.run.startTime;
    const tb = b.record.run.startTime;
    if (ta !== null && tb !== null && ta !== tb) {
      return tb - ta;
    }
    if ((ta === null) !== (tb === null)) {
      return ta === null ? 1 : -1;
    }
    return position.get(b)! - position.get(a)!;
  });
}

export interface IParamDiff {
  readonly name: string;
  /** One value per run, in the order given; null where the run lacks the param. */
  readonly values: ReadonlyArray<string | null>;
}

/** The params whose values are not the same in all the runs, sorted by name. */
export function differingParams(records: readonly IRunRecord[]): IParamDiff[] {
  const names = new Set<string>();
  for (const r of records) {
    for (const name of r.params.keys()) {
      names.add(name);
    }
  }
  const diffs: IParamDiff[] = [];
  for (const name of [...names].sort()) {
    const values = records.map(r => r.params.get(name) ?? null);
    if (new Set(values).size > 1) {
      diffs.push({ name, values });
    }
  }
  return diffs;
}

/**
 * The few params worth showing in a one-line summary: those that differ
 * between the runs of the notebook first, then the rest, at most `limit`.
 */
export function keyParams(
  record: IRunRecord,
  varying: ReadonlySet<string>,
  limit = 3
): Array<[string, string]> {
  const entries = [...record.params.entries()];
  const first = entries.filter(([k]) => varying.has(k));
  const rest = entries.filter(([k]) => !varying.has(k));
  return [...first, ...rest].slice(0, limit);
}

/** The headline value of each metric: its best when it has a goal, else its last. */
export function headlineMetrics(
  record: IRunRecord,
  limit = 3
): Array<{ name: string; value: number | null; kind: 'best' | 'last' }> {
  const out: Array<{ name: string; value: number | null; kind: 'best' | 'last' }> = [];
  const withGoal = [...record.metrics].filter(([, m]) => m.goal !== null);
  const withoutGoal = [...record.metrics].filter(([, m]) => m.goal === null);
  for (const [name, m] of [...withGoal, ...withoutGoal]) {
    out.push(
      m.goal !== null && m.best !== null
        ? { name, value: m.best, kind: 'best' }
        : { name, value: m.last, kind: 'last' }
    );
  }
  return out.slice(0, limit);
}
