// Which storage backends a test file runs against. TEST_BACKENDS=memory,sqlite
// narrows the list; by default every backend this machine can run.
export function backendsUnderTest(): string[] {
  const all = ['memory'];
  const only = process.env.TEST_BACKENDS?.split(',').map((s) => s.trim()).filter(Boolean);
  return only ? all.filter((b) => only.includes(b.split(':')[0])) : all;
}
