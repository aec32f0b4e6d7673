import { Command } from 'commander';
import { registerAccessCommands } from './access.ts';
import { registerAdminCommands } from './admin.ts';
import { registerAlertCommands } from './alerts.ts';
import { registerApiKeyCommands } from './api-keys.ts';
import { registerApprovalCommands } from './approvals.ts';
import { registerAssetCommands } from './assets.ts';
import { registerAuditCommands } from './audit.ts';
import { type Output, reportFailure } from './context.ts';
import { registerControlCommands } from './controls.ts';
import { registerDepositCommands } from './deposit-suspense.ts';
import { registerDrillCommands } from './drills.ts';
import { registerEscrowCommands } from './escrow.ts';
import { registerIncidentCommands } from './incidents.ts';
import { registerLedgerCommands } from './ledger.ts';
import { registerMerchantWebhookCommands } from './merchant-webhooks.ts';
import { registerChannelCommands, registerPayoutCommands } from './payouts.ts';
import { registerReconcileCommands } from './reconcile.ts';
import { registerRunbookCommands } from './runbooks.ts';
import { registerSandboxCommands } from './sandbox.ts';
import { registerServeCommands } from './serve.ts';
import { registerStreamCommands } from './streams.ts';
import { registerTriageCommands } from './triage.ts';
import { registerProviderCommands, registerWebhookCommands } from './webhooks.ts';

export function buildProgram(): Command {
  const program = new Command('settledesk')
    .description('settledesk: a payments backend that settles on Stellar, built to be run on call')
    .option('--json', 'machine-readable output')
    .showHelpAfterError();
  const output = (): Output => ({ json: Boolean(program.opts().json) });
  registerServeCommands(program);
  registerAdminCommands(program, output);
  registerAccessCommands(program, output);
  registerApiKeyCommands(program, output);
  registerControlCommands(program, output);
  registerApprovalCommands(program, output);
  registerAuditCommands(program, output);
  registerAssetCommands(program, output);
  registerLedgerCommands(program, output);
  registerSandboxCommands(program, output);
  registerPayoutCommands(program, output);
  registerEscrowCommands(program, output);
  registerStreamCommands(program, output);
  registerChannelCommands(program, output);
  registerWebhookCommands(program, output);
  registerDepositCommands(program, output);
  registerProviderCommands(program, output);
  registerMerchantWebhookCommands(program, output);
  registerTriageCommands(program, output);
  registerIncidentCommands(program, output);
  registerReconcileCommands(program, output);
  registerRunbookCommands(program, output);
  registerDrillCommands(program, output);
  registerAlertCommands(program);
  return program;
}

if (import.meta.main) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((error: unknown) => {
      process.exitCode = reportFailure(error);
    });
}
