// The log lines of a running server (serve, cluster): one entry per thing that happened, written
// to stderr in the human format (`nbdraid: MESSAGE`) or as one JSON object a line for a log
// shipper (`--log-format json`, docs/operations.md):
//
//   {"time":"2026-12-03T13:40:00.123Z","level":"warn","controller":2,"array":"r5",
//    "event":"member.failed","message":"r5: member 1 failed (...)","fields":{"slot":1,"reason":"..."}}
//
//   const log = lineLog('json', { array: 'r5' });
//   log({ event: 'rebuild.started', message: 'r5: rebuilding slot 1', fields: { slot: 1, task: 4 } });
import { NbdraidError } from './errors.js';

export const LOG_FORMATS = ['human', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export type LogLevel = 'info' | 'warn' | 'error';

export interface LogEntry {
  /** What happened, as a dotted kind ('member.failed', 'rebuild.complete', 'nbd'). */
  event: string;
  /** The line a person reads. */
  message: string;
  /** Default 'info'. */
  level?: LogLevel;
  /** The facts of the event, for machines (task, slot, path...). */
  fields?: Record<string, unknown>;
}

export type Log = (entry: LogEntry) => void;

/** Who logs: read at each line, so the controller id can be filled in once it is known. */
export interface LogContext { controller?: number; array?: string }

/** The --log-format value, checked: one clear error for anything else. */
export function parseLogFormat(value: string, flag = '--log-format'): LogFormat {
  const format = LOG_FORMATS.find((f) => f === value);
  if (!format) throw new NbdraidError('EINVAL', `${flag} ${value}`, `expected ${LOG_FORMATS.join(' or ')}`);
  return format;
}

/** One entry as one line (with its newline) in `format`. */
export function formatLogLine(format: LogFormat, entry: LogEntry, context: LogContext = {}, now = new Date()): string {
  if (format === 'human') return `nbdraid: ${entry.message}\n`;
  return `${JSON.stringify({
    time: now.toISOString(),
    level: entry.level ?? 'info',
    controller: context.controller ?? null,
    array: context.array ?? null,
    event: entry.event,
    message: entry.message,
    fields: entry.fields ?? {},
  })}\n`;
}

/** A log writing each entry as one line in `format` (to stderr unless told). */
export function lineLog(format: LogFormat, context: LogContext = {}, write: (line: string) => void = (l) => process.stderr.write(l)): Log {
  return (entry) => write(formatLogLine(format, entry, context));
}

/**
 * Adapts a log for a layer that logs plain lines (the volume, the NBD server): each is one `event`
 * entry, at the level the line comes with, else `level`.
 */
export function plainLines(log: Log, event: string, level: LogLevel = 'info'): (line: string, lineLevel?: LogLevel) => void {
  return (message, lineLevel) => log({ event, message, level: lineLevel ?? level });
}
