import { apiKeyRoutes } from './access/api-key-routes.ts';
import { accessTasks, keyringReencryptCrontab } from './access/tasks.ts';
import { adjustmentProposalAction } from './adjustments/adjustments.ts';
import { adjustmentRoutes } from './adjustments/routes.ts';
import { Approvals } from './approvals/engine.ts';
import { approvalRoutes } from './approvals/routes.ts';
import { approvalsCrontab, approvalTasks } from './approvals/tasks.ts';
import { auditCrontab, auditTasks } from './audit/tasks.ts';
import { controlRoutes } from './controls/routes.ts';
import { controlActions } from './controls/service.ts';
import { depositRoutes } from './deposits/routes.ts';
import { depositTasks } from './deposits/tasks.ts';
import { escrowRoutes } from './escrow/routes.ts';
import { resolveDisputeProposalAction } from './escrow/service.ts';
import { escrowCrontab, escrowTasks } from './escrow/tasks.ts';
import { idempotencyCrontab, idempotencyTasks } from './idempotency/tasks.ts';
import { alertmanagerRoutes } from './incidents/alertmanager-routes.ts';
import { escalationRoutes } from './incidents/escalation-routes.ts';
import { escalationCrontab, escalationTasks } from './incidents/escalation-tasks.ts';
import { communicationRoutes } from './incidents/message-routes.ts';
import { postmortemRoutes } from './incidents/postmortem-routes.ts';
import { incidentRecordRoutes } from './incidents/routes.ts';
import { reversalRoutes } from './ledger/reversal-routes.ts';
import { reversalProposalAction } from './ledger/reversals.ts';
import { ledgerRoutes } from './ledger/routes.ts';
import { incidentRoutes } from './ops/routes.ts';
import { Triage } from './ops/triage.ts';
import type { DestinationScreen } from './payouts/destinations.ts';
import { payoutRoutes } from './payouts/routes.ts';
import { approveLargePayoutAction, resolveProposalAction, settleTask } from './payouts/service.ts';
import { healthRoutes } from './platform/health.ts';
import { heartbeat, heartbeatCrontab, heartbeatTask, workersCheck } from './platform/heartbeat.ts';
import type { RouteModule } from './platform/http/app.ts';
import type { TaskMap, WorkerOf } from './platform/jobs.ts';
import type { Poller } from './platform/poller.ts';
import type { Runtime } from './platform/runtime.ts';
import {
  reconciliationCrontab,
  reconciliationTasks,
  reconciliationWorkerOf,
} from './reconciliation/tasks.ts';
import type { StellarEndpoints } from './stellar/endpoints.ts';
import { createSettlementChain, type StellarChain } from './stellar/settlement-chain.ts';
import { loadWallet } from './stellar/wallet.ts';
import { streamRoutes } from './streams/routes.ts';
import { streamsCrontab, streamTasks } from './streams/tasks.ts';
import { merchantWebhookRoutes } from './webhooks/routes.ts';
import { merchantWebhooksCrontab, merchantWebhookTasks } from './webhooks/tasks.ts';

/** Services shared by routes, tasks and CLI commands, built once per process. */
export type Domains = {
  approvals: Approvals;
  /** Set in processes that run the job worker and can reach Stellar. */
  settlement: { loop: Poller | undefined; chain: StellarChain | undefined };
  /** Where this process reaches Stellar, when it does (the API reports on it; detectors read it). */
  stellar: StellarEndpoints | undefined;
  /**
   * The API's own failover client to the chain: payout destinations are read through it, and its
   * paths (every Horizon, then RPC: the same URLs payment proofs read through src/stellar/read.ts)
   * are this process's Stellar readiness checks.
   */
  apiChain: StellarChain | undefined;
  /** Whether readiness already checks the Stellar paths, so the settlement engine adds none. */
  stellarPathsChecked: boolean;
  triage: Triage;
  /** What the API reads about a payout's destination before accepting it. */
  payoutDestinations: DestinationScreen;
};

export function createDomains(runtime: Runtime, stellar?: StellarEndpoints): Domains {
  const approvals = new Approvals({
    ttlSecondsDefault: runtime.config.approvalTtlSecondsDefault,
    ttlSecondsMax: runtime.config.approvalTtlSecondsMax,
  });
  for (const action of controlActions()) approvals.register(action);
  approvals.register(adjustmentProposalAction());
  approvals.register(reversalProposalAction());
  approvals.register(resolveProposalAction());
  approvals.register(approveLargePayoutAction());
  approvals.register(resolveDisputeProposalAction());
  const settlement: Domains['settlement'] = { loop: undefined, chain: undefined };
  const triage = new Triage({
    sql: runtime.sql,
    stellar,
    breakers: () => settlement.chain?.paths(),
    health: runtime.health,
  });
  const apiChain = stellar ? createSettlementChain(stellar, runtime.logger) : undefined;
  return {
    approvals,
    settlement,
    stellar,
    apiChain,
    stellarPathsChecked: false,
    triage,
    payoutDestinations: payoutDestinations(runtime, apiChain),
  };
}

/**
 * The wallet is loaded on first use, as the deposit routes do; the API reads the chain through a
 * failover client of its own (the engine's may run in another process). Without Stellar
 * endpoints nothing is read and nothing is refused on the chain's word.
 */
function payoutDestinations(runtime: Runtime, chain: StellarChain | undefined): DestinationScreen {
  let platform: Promise<ReadonlySet<string>> | undefined;
  return {
    platformAccounts: () => {
      platform ??= loadWallet(runtime.config).then(
        (wallet) =>
          new Set([wallet.hotWallet.publicKey(), ...wallet.channels.map((channel) => channel.publicKey())]),
      );
      return platform;
    },
    lookup: async (accountId, asset) =>
      chain
        ? chain.destination(accountId, asset)
        : { kind: 'unknown', reason: 'no Stellar network configured' },
  };
}

/**
 * The one place that lists what each domain contributes: routes (registered in this order after
 * the platform plugins), background tasks, cron lines and readiness checks.
 */
export function domainRoutes(runtime: Runtime, domains: Domains): RouteModule[] {
  runtime.health.register(workersCheck(runtime.sql));
  // An API-only instance reads the chain too (payout destinations, payment proofs); deposit
  // intents only name the hot wallet and reach no path.
  for (const check of domains.apiChain?.healthChecks() ?? []) runtime.health.register(check);
  domains.stellarPathsChecked = domains.apiChain !== undefined;
  return [
    healthRoutes(runtime.health),
    ledgerRoutes(runtime.sql),
    adjustmentRoutes(runtime.sql, domains.approvals),
    reversalRoutes(runtime.sql, domains.approvals),
    approvalRoutes(runtime.sql, domains.approvals),
    apiKeyRoutes(runtime.sql),
    controlRoutes(runtime.sql, domains.approvals),
    payoutRoutes(runtime.sql, domains.approvals, domains.payoutDestinations, runtime.config.payouts),
    escrowRoutes(runtime.sql, domains.approvals, domains.payoutDestinations),
    streamRoutes(runtime.sql, domains.payoutDestinations),
    depositRoutes(runtime.sql, runtime.config, runtime.providerSecrets, runtime.logger),
    merchantWebhookRoutes(runtime),
    incidentRoutes(domains.triage),
    incidentRecordRoutes(runtime.sql),
    communicationRoutes(runtime.sql, runtime.config.communications),
    postmortemRoutes(runtime.sql),
    escalationRoutes(runtime.sql),
    alertmanagerRoutes(runtime),
  ];
}

export function domainTasks(runtime: Runtime, domains: Domains): TaskMap {
  return {
    [heartbeatTask]: heartbeat(runtime.sql),
    ...approvalTasks(runtime.sql, domains.approvals),
    ...auditTasks(runtime),
    ...accessTasks(runtime),
    ...depositTasks(runtime),
    ...escrowTasks(runtime.sql),
    ...streamTasks(runtime.sql),
    ...idempotencyTasks(runtime.sql, runtime.config.idempotencyRetentionSeconds),
    ...escalationTasks(runtime),
    ...merchantWebhookTasks(runtime),
    ...reconciliationTasks(runtime, domains.stellar),
    // Enqueued with each accepted payout: wakes this process's settlement loop, if it runs one.
    [settleTask]: async () => domains.settlement.loop?.wake(),
  };
}

export const domainCrontab = [
  heartbeatCrontab,
  approvalsCrontab,
  auditCrontab,
  keyringReencryptCrontab,
  escrowCrontab,
  escalationCrontab,
  streamsCrontab,
  idempotencyCrontab,
  merchantWebhooksCrontab,
  reconciliationCrontab,
].join('\n');

/** The worker name each task is counted under in worker_runs_total: its own, but the detectors' is one. */
export const domainWorkerOf: WorkerOf = (task) => reconciliationWorkerOf(task) ?? task;
