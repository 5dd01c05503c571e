/**
 * nbtrack's JupyterLab plugins. The record renderer is a mime extension
 * (mime.ts); this module adds the Runs side panel and its command.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { CommandIDs } from './commands';
import { RunsPanel } from './panel';

const runsIcon = new LabIcon({
  name: 'nbtrack:runs',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">' +
    '<path class="jp-icon3" fill="#616161" d="M1 14h14v1H1zM2 12l3.5-5 3 3L14 3l.8.6-6.2 7.9-3-3-2.8 4z"/>' +
    '</svg>'
});

const runsPanel: JupyterFrontEndPlugin<void> = {
  id: 'nbtrack:runs-panel',
  description: 'A side panel listing the tracked runs of the current notebook.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ) => {
    const panel = new RunsPanel({
      tracker,
      showNotebook: notebook => app.shell.activateById(notebook.id)
    });
    panel.title.icon = runsIcon;
    app.shell.add(panel, 'left', { rank: 600, type: 'nbtrack Runs' });
    app.commands.addCommand(CommandIDs.showRuns, {
      label: 'Show Tracked Runs',
      caption: 'Open the nbtrack Runs panel for the current notebook',
      execute: () => {
        app.shell.activateById(panel.id);
        panel.refresh();
      }
    });
    palette?.addItem({ command: CommandIDs.showRuns, category: 'nbtrack' });
  }
};

export default [runsPanel];
