import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The unit suite: pure logic and fakes, no network. The examples import the package by its name,
// as apps do; here that name is the source.
export default defineConfig({
  resolve: {
    alias: {
      "@emostream/client": fileURLToPath(new URL("./src/index.ts", import.meta.url)),
      "react-native": fileURLToPath(new URL("./test/support/react-native.ts", import.meta.url)),
    },
  },
  test: { include: ["test/**/*.test.ts", "test/**/*.test.tsx"], environment: "node" },
});
