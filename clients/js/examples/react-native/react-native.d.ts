// The two components the React Native example uses, typed for the SDK's type check only: the
// package itself needs no React Native (the unit test renders the example with stand-ins).
declare module "react-native" {
  import type { ComponentType, ReactNode } from "react";
  export const View: ComponentType<{ accessibilityLabel?: string; children?: ReactNode }>;
  export const Text: ComponentType<{ children?: ReactNode }>;
}
