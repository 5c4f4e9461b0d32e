// The list of CLI verbs; each file in this folder exports one yargs CommandModule.
import type { CommandModule } from 'yargs';
import { serveCommand } from './serve.js';
import { createCommand } from './create.js';
import { examineCommand } from './examine.js';
import { assembleCommand } from './assemble.js';
import { statusCommand } from './status.js';
import { listCommand } from './list.js';
import { failCommand } from './fail.js';
import { removeCommand } from './remove.js';
import { addSpareCommand } from './add-spare.js';
import { replaceCommand } from './replace.js';
import { checkCommand, repairCommand } from './scrub.js';
import { throttleCommand } from './throttle.js';
import { clusterCommand } from './cluster.js';
import { tasksCommand } from './tasks.js';
import { controllersCommand } from './controllers.js';
import { eventsCommand } from './events.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const verbs: CommandModule<any, any>[] = [serveCommand, createCommand, examineCommand, assembleCommand, statusCommand, listCommand, failCommand, removeCommand,
  clusterCommand, addSpareCommand, replaceCommand, checkCommand, repairCommand, throttleCommand,
  tasksCommand, controllersCommand, eventsCommand];
