import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { sealAuditLog, verifyAuditLog } from '../audit/audit.ts';
import { CliError, type Output, print, withRuntime } from './context.ts';

export function registerAuditCommands(program: Command, output: () => Output): void {
  const audit = program.command('audit').description('the hash-chained audit log');
  audit
    .command('verify')
    .description('seal pending rows, then walk the whole chain; exits 1 naming the first bad row')
    .action(async () => {
      const result = await withRuntime({ migrate: false }, async (runtime) => {
        await sealAuditLog(runtime.sql);
        const bar = new SingleBar({
          format: 'verifying audit log [{bar}] {value}/{total} rows',
          stream: process.stderr,
        });
        let started = false;
        const outcome = await verifyAuditLog(runtime.sql, (checked, total) => {
          if (!started) bar.start(Number(total), 0);
          started = true;
          bar.update(Number(checked));
        });
        if (started) bar.stop();
        return outcome;
      });
      if (!result.ok) {
        print(output(), result, () => '');
        throw new CliError(
          `audit log verification failed at row id ${result.badRowId} (chain position ${result.chainPosition}): ${result.problem}`,
        );
      }
      print(output(), result, () => `audit log intact: ${result.rowsChecked} rows verified`);
    });
}
