import type postgres from 'postgres';

/** int8 columns come back as bigint: money never passes through a JavaScript number. */
export type Types = { bigint: bigint };
export type Sql = postgres.Sql<Types>;
export type Tx = postgres.TransactionSql<Types>;
/** Data functions take the executor as their first argument: a pool or a caller's transaction. */
export type Executor = Sql | Tx;
