import type { Command } from 'commander';
import { endpointAddressPolicy } from '../webhooks/address-policy.ts';
import { type DeliveryStatus, deliveryStatuses } from '../webhooks/data.ts';
import { merchantEventTypeNames } from '../webhooks/event-types.ts';
import { endpointSecretBox } from '../webhooks/secrets.ts';
import {
  addSecret,
  createEndpoint,
  type DeliveryView,
  deliveriesPageMax,
  type EndpointView,
  endpointsPageMax,
  getDeliveryDetail,
  listDeliveries,
  listEndpoints,
  replayDelivery,
  retireSecret,
  setEndpointEnabled,
} from '../webhooks/service.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';

/**
 * `settledesk merchant-webhooks …`: outbound webhooks to merchants (`settledesk webhooks` is the
 * providers' incoming deposit webhooks). The same library as `/v1/webhook-endpoints`.
 */

function limitOf(text: string, max: number): number {
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new CliError(`--limit must be a whole number from 1 to ${max}`);
  }
  return limit;
}

function endpointLine(endpoint: EndpointView): string {
  return [
    endpoint.id,
    endpoint.enabled ? 'enabled ' : 'disabled',
    endpoint.url,
    endpoint.eventTypes.join(','),
    endpoint.ownerRef === null ? 'all accounts' : `owner ${endpoint.ownerRef}`,
  ].join('  ');
}

function deliveryLine(delivery: DeliveryView): string {
  const when =
    delivery.status === 'pending'
      ? `next ${delivery.nextAttemptAt}`
      : (delivery.deliveredAt ?? delivery.deadLetteredAt ?? '');
  const error = delivery.lastError === null ? '' : `: ${delivery.lastError}`;
  return `${delivery.id}  ${delivery.status.padEnd(13)} ${delivery.eventType.padEnd(16)} tried ${delivery.attempts}×  ${when}${error}`;
}

function registerEndpointCommands(parent: Command, output: () => Output): void {
  const endpoints = parent.command('endpoints').description('merchant endpoints and the events they receive');
  endpoints
    .command('add')
    .description('register an endpoint; prints its signing secret (whsec_…) this once only')
    .requiredOption('--url <url>', 'https:// URL events are POSTed to')
    .requiredOption('--events <types>', `comma-separated event types: ${merchantEventTypeNames.join(', ')}`)
    .option('--owner-ref <ref>', "only events about accounts with this ownerRef (the merchant's accounts)")
    .option('--all-accounts', 'events about every account (the platform’s own integration)')
    .option('--description <text>', 'what the endpoint is, for people')
    .option('--as <name>', 'who registers it (default SETTLEDESK_OPERATOR or the OS user)')
    .action(
      async (options: {
        url: string;
        events: string;
        ownerRef?: string;
        allAccounts?: boolean;
        description?: string;
        as?: string;
      }) => {
        // Who hears about which accounts is a choice to make out loud, not a default.
        if ((options.ownerRef === undefined) === (options.allAccounts !== true)) {
          throw new CliError('give exactly one of --owner-ref REF and --all-accounts');
        }
        const actor = operatorName(options.as);
        const created = await withRuntime({ migrate: false }, (runtime) =>
          createEndpoint(
            runtime.sql,
            {
              secrets: endpointSecretBox(runtime.config),
              allowHttp: runtime.config.merchantWebhooks.allowHttp,
              policy: endpointAddressPolicy(runtime.config.merchantWebhooks),
            },
            {
              url: options.url,
              eventTypes: options.events.split(',').map((type) => type.trim()),
              ownerRef: options.ownerRef ?? null,
              description: options.description ?? null,
            },
            { name: actor },
          ),
        );
        print(
          output(),
          { ...created.endpoint, secret: created.secret },
          () =>
            `${endpointLine(created.endpoint)}\nsecret ${created.secret}\n(shown this once: give it to the merchant now)`,
        );
      },
    );
  endpoints
    .command('list')
    .description('every endpoint, oldest first (secrets are never shown again)')
    .option('--limit <n>', `at most this many (≤ ${endpointsPageMax})`, '50')
    .action(async (options: { limit: string }) => {
      const limit = limitOf(options.limit, endpointsPageMax);
      const rows = await withRuntime({ migrate: false }, (runtime) => listEndpoints(runtime.sql, limit));
      print(output(), rows, () =>
        rows.length === 0 ? 'no merchant webhook endpoints' : rows.map(endpointLine).join('\n'),
      );
    });
  for (const [action, enabled] of [
    ['disable', false],
    ['enable', true],
  ] as const) {
    endpoints
      .command(`${action} <id>`)
      .description(
        enabled
          ? 'deliver to the endpoint again (replay what was dead-lettered meanwhile)'
          : 'stop delivering to the endpoint; its pending deliveries are dead-lettered',
      )
      .requiredOption('--reason <text>', 'why, for the audit log')
      .option('--as <name>', 'who changes it (default SETTLEDESK_OPERATOR or the OS user)')
      .action(async (id: string, options: { reason: string; as?: string }) => {
        const actor = operatorName(options.as);
        const row = await withRuntime({ migrate: false }, (runtime) =>
          setEndpointEnabled(runtime.sql, { id, enabled, reason: options.reason }, { name: actor }),
        );
        print(output(), row, () => endpointLine(row));
      });
  }
  registerSecretCommands(endpoints, output);
}

function registerSecretCommands(endpoints: Command, output: () => Output): void {
  endpoints
    .command('add-secret <id>')
    .description(
      'rotate, step 1: a new signing secret (printed this once); deliveries carry both signatures until retire-secret',
    )
    .option('--as <name>', 'who rotates it (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (id: string, options: { as?: string }) => {
      const actor = operatorName(options.as);
      const added = await withRuntime({ migrate: false }, (runtime) =>
        addSecret(runtime.sql, { secrets: endpointSecretBox(runtime.config) }, id, { name: actor }),
      );
      print(
        output(),
        { ...added.endpoint, secret: added.secret },
        () =>
          `${endpointLine(added.endpoint)}\nsecret ${added.secret}\n(shown this once: give it to the merchant now; the previous secret keeps signing until retire-secret)`,
      );
    });
  endpoints
    .command('retire-secret <id>')
    .description(
      'rotate, step 2: the previous signing secret stops signing (once the merchant verifies with the new one)',
    )
    .option('--as <name>', 'who retires it (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (id: string, options: { as?: string }) => {
      const actor = operatorName(options.as);
      const row = await withRuntime({ migrate: false }, (runtime) =>
        retireSecret(runtime.sql, id, { name: actor }),
      );
      print(output(), row, () => `${endpointLine(row)}\nthe previous secret is retired`);
    });
}

function registerDeliveryCommands(parent: Command, output: () => Output): void {
  parent
    .command('deliveries')
    .description('the delivery log, newest first')
    .option('--status <status>', `only this status: ${deliveryStatuses.join(', ')}`)
    .option('--endpoint <id>', 'only deliveries to this endpoint')
    .option('--limit <n>', `at most this many (≤ ${deliveriesPageMax})`, '50')
    .action(async (options: { status?: string; endpoint?: string; limit: string }) => {
      const status = options.status as DeliveryStatus | undefined;
      if (status !== undefined && !deliveryStatuses.includes(status)) {
        throw new CliError(`--status must be one of ${deliveryStatuses.join(', ')}`);
      }
      const limit = limitOf(options.limit, deliveriesPageMax);
      const rows = await withRuntime({ migrate: false }, (runtime) =>
        listDeliveries(runtime.sql, { status, endpointId: options.endpoint, limit }),
      );
      print(output(), rows, () => (rows.length === 0 ? 'no deliveries' : rows.map(deliveryLine).join('\n')));
    });
  parent
    .command('attempts <delivery-id>')
    .description('one delivery and every attempt: status code, duration, error, response')
    .action(async (id: string) => {
      const detail = await withRuntime({ migrate: false }, (runtime) => getDeliveryDetail(runtime.sql, id));
      print(output(), detail, () =>
        [
          deliveryLine(detail),
          ...detail.log.map(
            (attempt) =>
              `  #${attempt.attempt}  ${attempt.attemptedAt}  ${attempt.statusCode ?? '-'}  ${attempt.durationMs} ms${attempt.error ? `  ${attempt.error}` : ''}`,
          ),
        ].join('\n'),
      );
    });
  const dlq = parent
    .command('dlq')
    .description('deliveries that used up their attempts (or whose endpoint was disabled)');
  dlq
    .command('list')
    .description('dead-lettered deliveries, newest first, with the last error')
    .option('--limit <n>', `at most this many (≤ ${deliveriesPageMax})`, '50')
    .action(async (options: { limit: string }) => {
      const limit = limitOf(options.limit, deliveriesPageMax);
      const rows = await withRuntime({ migrate: false }, (runtime) =>
        listDeliveries(runtime.sql, { status: 'dead_lettered', endpointId: undefined, limit }),
      );
      print(output(), rows, () =>
        rows.length === 0 ? 'the dead-letter queue is empty' : rows.map(deliveryLine).join('\n'),
      );
    });
  dlq
    .command('replay <id>')
    .description('send a dead-lettered delivery again (same webhook-id), with a fresh attempt budget')
    .option('--as <name>', 'who replays (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (id: string, options: { as?: string }) => {
      const actor = operatorName(options.as);
      const row = await withRuntime({ migrate: false }, (runtime) =>
        replayDelivery(runtime.sql, id, { name: actor }),
      );
      print(output(), row, () => `${row.id}: queued again (${row.status})`);
    });
}

export function registerMerchantWebhookCommands(program: Command, output: () => Output): Command {
  const merchantWebhooks = program
    .command('merchant-webhooks')
    .description('outbound webhooks to merchants: endpoints, the delivery log, the dead-letter queue');
  registerEndpointCommands(merchantWebhooks, output);
  registerDeliveryCommands(merchantWebhooks, output);
  return merchantWebhooks;
}
