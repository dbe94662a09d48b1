import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The integration suite: the real local stack named by EMOSTREAM_TEST_* variables
// (tests/client_js/test_sdk_against_stack.py starts it and runs this).
export default defineConfig({
  resolve: { alias: { "@emostream/client": fileURLToPath(new URL("./src/index.ts", import.meta.url)) } },
  test: { include: ["integration/**/*.test.ts"], environment: "node", testTimeout: 300_000 },
});
