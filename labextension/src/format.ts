/**
 * Numbers as a record writes them, and text for numbers, durations and times,
 * shared by the record view and the runs panel. DOM-free.
 */

/**
 * A metric value as written in a record: a number, or one of the strings
 * "NaN", "Infinity", "-Infinity" that JSON cannot express. Anything else is null.
 */
export function decodeNumber(value: unknown): number | null {
  if (typeof value === 'number') {
    return value;
  }
  switch (value) {
    case 'NaN':
      return NaN;
    case 'Infinity':
      return Infinity;
    case '-Infinity':
      return -Infinity;
    default:
      return null;
  }
}

/** A metric value in at most 4 significant digits; NaN and infinities spelled out. */
export function formatNumber(value: number | null): string {
  if (value === null) {
    return '—';
  }
  if (Number.isNaN(value)) {
    return 'NaN';
  }
  if (!Number.isFinite(value)) {
    return value > 0 ? '∞' : '−∞';
  }
  if (Number.isInteger(value) && Math.abs(value) < 1e6) {
    return String(value);
  }
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) {
    return value.toExponential(3).replace(/\.?0+e/, 'e');
  }
  return String(Number(value.toPrecision(4)));
}

/** A value at full precision, for hover: what the record holds, nothing rounded. */
export function formatFull(value: number | null): string {
  if (value === null) {
    return '—';
  }
  if (!Number.isFinite(value)) {
    return formatNumber(value);
  }
  return String(value);
}

/**
 * [seconds per unit, unit] to label a time axis spanning `spanS` seconds:
 * seconds up to two minutes, minutes up to two hours, hours beyond (as
 * nbtrack.record.axes.time_unit does for the SVG).
 */
export function timeUnit(spanS: number): [number, string] {
  if (spanS < 120) {
    return [1, 's'];
  }
  if (spanS < 7200) {
    return [60, 'min'];
  }
  return [3600, 'h'];
}

/** "42.1 s", "3 min 05 s", "2 h 07 min". */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) {
    return '—';
  }
  if (seconds < 60) {
    return `${seconds < 10 ? seconds.toFixed(2) : seconds.toFixed(1)} s`;
  }
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  if (h > 0) {
    return `${h} h ${String(m).padStart(2, '0')} min`;
  }
  return `${m} min ${String(s).padStart(2, '0')} s`;
}

/** A start time as local "YYYY-MM-DD HH:MM:SS". */
export function formatTime(epochMs: number | null): string {
  if (epochMs === null) {
    return '—';
  }
  const d = new Date(epochMs);
  if (Number.isNaN(d.getTime())) {
    return '—';
  }
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}
