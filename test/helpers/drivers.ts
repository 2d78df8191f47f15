// Every driver the conformance suite runs against, each made fresh per test.
import type { Driver } from '../../src/mvcc/driver';
import { MemoryDriver } from '../../drivers/memory/memory-driver';
import { backendsUnderTest } from './backends';

export interface DriverFactory {
  name: string;
  /** A new, empty, opened store. */
  create(): Promise<Driver>;
}

const factories: DriverFactory[] = [
  {
    name: 'memory',
    create: async () => {
      const d = new MemoryDriver();
      await d.open();
      return d;
    },
  },
];

export function driverFactories(): DriverFactory[] {
  const wanted = new Set(backendsUnderTest().map((b) => b.split(':')[0]));
  return factories.filter((f) => wanted.has(f.name));
}
