// Every driver the conformance suite runs against, each made fresh per test.
import type { Driver } from '../../src/mvcc/driver';
import { createDriver } from '../../drivers/registry';
import { backendsUnderTest, freshBackend, type BackendKind } from './backends';

export interface DriverFactory {
  name: BackendKind;
  /** A new, empty, opened store; closing it also drops its database. */
  create(): Promise<Driver>;
}

export function driverFactories(): DriverFactory[] {
  return backendsUnderTest().map((name) => ({
    name,
    create: async () => {
      const fresh = await freshBackend(name);
      const driver = createDriver(fresh.url, { dataDir: '/nonexistent' });
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
