import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { sealAuditLog, type VerifyResult, verifyAuditLog } from '../audit/audit.ts';
import { CliError, type Output, print, withRuntime } from './context.ts';

export function registerAuditCommands(program: Command, output: () => Output): void {
  const audit = program.command('audit').description('the hash-chained audit log');
  audit
    .command('verify')
    .description(
      'seal pending rows, walk the whole chain and hold it against the latest signed checkpoint; exits 1 naming the first bad row or the missing positions',
    )
    .action(async () => {
      const result = await withRuntime({ migrate: false }, async (runtime) => {
        await sealAuditLog(runtime.sql);
        const bar = new SingleBar({
          format: 'verifying audit log [{bar}] {value}/{total} rows',
          stream: process.stderr,
        });
        let started = false;
        const outcome = await verifyAuditLog(runtime.sql, runtime.keyring, (checked, total) => {
          if (!started) bar.start(Number(total), 0);
          started = true;
          bar.update(Number(checked));
        });
        if (started) bar.stop();
        return outcome;
      });
      if (!result.ok) {
        print(output(), result, () => '');
        throw new CliError(`audit log verification failed${failedWhere(result)}: ${result.problem}`);
      }
      print(
        output(),
        result,
        () =>
          `audit log intact: ${result.rowsChecked} rows verified` +
          (result.checkpoint === null
            ? ' (no signed checkpoint yet)'
            : `, signed checkpoint at position ${result.checkpoint} holds`),
      );
    });
}

function failedWhere(result: Exclude<VerifyResult, { ok: true }>): string {
  if ('badRowId' in result) return ` at row id ${result.badRowId} (chain position ${result.chainPosition})`;
  if ('missing' in result) return `: chain positions ${result.missing.from}–${result.missing.to} are missing`;
  return ` at checkpoint ${result.checkpointId}`;
}
