import { describe, expect, it } from 'vitest';
import { otherGroup, StatementGroups, statementGroupOf, statementGroupsMax } from './statement-group.ts';

function template(strings: TemplateStringsArray, ..._values: unknown[]): TemplateStringsArray {
  return strings;
}

describe('statementGroupOf', () => {
  it('names the verb and the first table each verb names', () => {
    expect(statementGroupOf('insert into entries (journal_id) values ($1)')).toBe('insert:entries');
    expect(statementGroupOf('  UPDATE accounts set balance_minor = $1 where id = $2')).toBe(
      'update:accounts',
    );
    expect(statementGroupOf('delete from idempotency_keys where expires_at < now()')).toBe(
      'delete:idempotency_keys',
    );
    expect(statementGroupOf('select id, state\n  from payouts p join attempts a on a.payout_id = p.id')).toBe(
      'select:payouts',
    );
    expect(statementGroupOf('select 1 from graphile_worker.jobs')).toBe('select:graphile_worker.jobs');
    expect(statementGroupOf('with moved as (select id from payouts) update payouts set x = 1')).toBe(
      'with:payouts',
    );
    expect(statementGroupOf('lock table accounts in exclusive mode')).toBe('lock:accounts');
  });

  it('leaves the verb alone when no plain table follows: functions, subqueries, quoted names, no from', () => {
    expect(statementGroupOf('select 1')).toBe('select');
    expect(statementGroupOf('select graphile_worker.add_job($1::text)')).toBe('select');
    expect(statementGroupOf('select * from unnest($1::uuid[]) as ids')).toBe('select');
    expect(statementGroupOf("select date_part('epoch', now() - x) from (select 1) s")).toBe('select');
    expect(statementGroupOf('insert into "Weird Table" values (1)')).toBe('insert');
    expect(statementGroupOf(`select * from ${'t'.repeat(200)}`)).toBe('select');
  });

  it('calls anything that is not one of the listed verbs other, comments first stripped', () => {
    expect(statementGroupOf('create database "settledesk_x"')).toBe(otherGroup);
    expect(statementGroupOf('begin;\ncreate table x (id int);\ncommit;')).toBe(otherGroup);
    expect(statementGroupOf('')).toBe(otherGroup);
    expect(statementGroupOf("'; drop table accounts; --")).toBe(otherGroup);
    expect(statementGroupOf('-- sets the lock\n/* a\nblock */ select 1 from payouts')).toBe('select:payouts');
  });

  it('never takes a parameter as a table: a dynamic identifier leaves the verb', () => {
    const groups = new StatementGroups();
    const table = 'customer_supplied_name';
    expect(groups.ofTemplate(template`select * from ${table} where id = ${1}`)).toBe('select');
    expect(groups.ofTemplate(template`insert into ${table} values (${1})`)).toBe('insert');
  });
});

describe('StatementGroups', () => {
  it(`hands out at most ${statementGroupsMax} groups per process and other beyond them`, () => {
    const groups = new StatementGroups();
    const handed = new Set<string>();
    for (let index = 0; index < statementGroupsMax * 10; index += 1)
      handed.add(groups.of(`select * from table_${index}`));
    expect(handed.size).toBe(statementGroupsMax + 1);
    expect(handed.has(otherGroup)).toBe(true);
    expect(handed.has(`select:table_${statementGroupsMax - 1}`)).toBe(true);
    expect(handed.has(`select:table_${statementGroupsMax}`)).toBe(false);
  });

  it('keeps answering a group it has handed out once the cap is reached', () => {
    const groups = new StatementGroups(2);
    expect(groups.of('select * from payouts')).toBe('select:payouts');
    expect(groups.of('select * from accounts')).toBe('select:accounts');
    expect(groups.of('select * from entries')).toBe(otherGroup);
    expect(groups.of('select id from payouts where id = $1')).toBe('select:payouts');
  });

  it('answers a tagged template from its strings array, computed once', () => {
    const groups = new StatementGroups(1);
    const run = (id: number) => groups.ofTemplate(template`select * from payouts where id = ${id}`);
    expect(run(1)).toBe('select:payouts');
    expect(groups.of('select * from accounts')).toBe(otherGroup);
    expect(run(2)).toBe('select:payouts');
  });
});
