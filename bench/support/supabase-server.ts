/**
 * Child process of the bench: the test suite's embedded PostgreSQL prepared like a Supabase project,
 * plus the original plan's table, behind the test gateway. Out of the bench process, the gateway's
 * CPU work stays off the event loop being measured, as a remote Supabase would. Stops when the
 * parent disconnects (or dies).
 */
import { PostgrestGateway } from '../../test/support/gateway.js';
import type { PostgresConnectionInfo } from '../../test/support/postgres.js';
import { startSupabaseDatabase } from '../../test/support/supabase-db.js';
import { mintSupabaseKey } from '../../test/support/supabase-keys.js';
import { PLAN_SCHEMA_SQL } from './plan.js';

export interface SupabaseServerInfo {
  url: string;
  serviceRoleKey: string;
  admin: PostgresConnectionInfo;
}

const { cluster, db } = await startSupabaseDatabase('hybrid_cache_bench');
let gateway: PostgrestGateway | undefined;
const stop = async (code: number) => {
  await gateway?.close().catch(() => {});
  await cluster.destroy().catch(() => {});
  process.exit(code);
};
for (const event of ['disconnect', 'SIGTERM', 'SIGINT']) process.once(event, () => void stop(0));
try {
  const admin = await cluster.connect(db.admin.database);
  await admin.query(PLAN_SCHEMA_SQL).finally(() => admin.end());
  gateway = await PostgrestGateway.start({ connection: db.authenticator });
  const ready: SupabaseServerInfo = {
    url: gateway.url,
    serviceRoleKey: await mintSupabaseKey('service_role'),
    admin: db.admin,
  };
  process.send?.(ready);
} catch (error) {
  console.error(error);
  await stop(1);
}
