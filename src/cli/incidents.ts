import type { Command } from 'commander';
import type { Output } from './context.ts';
import { registerEscalationCommands } from './incident-escalation.ts';

/**
 * `settledesk incident …`: the whole incident lifecycle from a terminal, through the same service
 * functions as `/internal/incidents`. Each part registers its own subcommands here.
 */
export function registerIncidentCommands(program: Command, output: () => Output): void {
  const incident = program
    .command('incident')
    .description('incident records, timeline, escalation, messages, postmortems');
  void incident;
  void output;
  registerEscalationCommands(incident, output);
}
