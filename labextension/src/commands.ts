/** Command ids, in one place. */
export namespace CommandIDs {
  export const showRuns = 'nbtrack:show-runs';
}
