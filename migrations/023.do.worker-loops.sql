-- Each process's periodic loops as it last reported them (src/platform/loop-report.ts): the triage
-- summary judges from here which loops no process runs any more, and which processes went quiet.
-- Rows of processes that stopped reporting are pruned a day later, a bounded batch per report.

create table worker_loops (
  process_id text not null check (length(process_id) between 1 and 200),
  worker text not null check (length(worker) between 1 and 100),
  interval_seconds double precision not null check (interval_seconds > 0),
  -- max(3 x interval, the reporting process's floor): what "stale" means for this loop there.
  stale_after_seconds double precision not null check (stale_after_seconds > 0),
  last_success_at timestamptz not null,
  report_interval_seconds double precision not null check (report_interval_seconds > 0),
  reported_at timestamptz not null,
  primary key (process_id, worker)
);
create index worker_loops_by_reported_at on worker_loops (reported_at);
