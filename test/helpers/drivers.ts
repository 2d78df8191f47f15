// Every driver the conformance suite runs against, each made fresh per test.
import type { Driver } from '../../src/mvcc/driver';
import { createDriver } from '../../drivers/registry';
import { backendsUnderTest, freshBackend, type BackendKind } from './backends';

export interface DriverFactory {
  name: string;
  /** A new, empty, opened store; closing it also drops its database. */
  create(): Promise<Driver>;
}

/** Every backend under test; SQL ones also behind the read cache, which must keep the same contract. */
export function driverFactories(): DriverFactory[] {
  const variants: { name: string; kind: BackendKind; cache: number }[] = [];
  for (const kind of backendsUnderTest()) {
    variants.push({ name: kind, kind, cache: 0 });
    if (kind !== 'memory') variants.push({ name: `${kind} with read cache`, kind, cache: 64 << 20 });
  }
  return variants.map(({ name, kind, cache }) => ({
    name,
    create: async () => {
      const fresh = await freshBackend(kind);
      const driver = createDriver(fresh.url, { dataDir: '/nonexistent', readCacheBytes: cache });
      await driver.open();
      const close = driver.close.bind(driver);
      driver.close = async () => {
        await close();
        await fresh.drop();
      };
      return driver;
    },
  }));
}
