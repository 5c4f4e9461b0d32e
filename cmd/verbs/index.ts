// The list of CLI verbs; each file in this folder exports one yargs CommandModule.
import type { CommandModule } from 'yargs';
import { serveCommand } from './serve.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const verbs: CommandModule<any, any>[] = [serveCommand];
