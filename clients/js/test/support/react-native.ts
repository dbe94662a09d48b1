// Stand-ins for the React Native components the example uses: element types are plain names.
export const View = "View";
export const Text = "Text";
