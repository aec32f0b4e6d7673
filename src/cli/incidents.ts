import type { Command } from 'commander';
import type { Output } from './context.ts';
import { registerEscalationCommands } from './incident-escalation.ts';
import { registerIncidentMessageCommands } from './incident-messages.ts';
import { registerPostmortemCommands } from './incident-postmortem.ts';
import { registerIncidentRecordCommands } from './incident-records.ts';

/**
 * `settledesk incident …`: the whole incident lifecycle from a terminal, through the same service
 * functions as `/internal/incidents`. Each part registers its own subcommands here.
 */
export function registerIncidentCommands(program: Command, output: () => Output): void {
  const incident = program
    .command('incident')
    .description('incident records, timeline, escalation, messages, postmortems');
  registerIncidentRecordCommands(incident, output);
  registerIncidentMessageCommands(incident, output);
  registerPostmortemCommands(incident, output);
  registerEscalationCommands(incident, output);
}
