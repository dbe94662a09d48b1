// Stand-ins for the React Native components the example uses, as react-native's own jest setup
// mocks them: plain names, which react-test-renderer renders as host elements.
export const View = "View";
export const Text = "Text";
