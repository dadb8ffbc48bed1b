/**
 * The UI's English words. de.ts must have every key (its type is `Messages`, so a missing or
 * extra key is a type error; tests/i18n.test.ts checks the placeholders match too).
 * vue-i18n syntax: {name} is a placeholder, `a | b` a plural; write @ | { } as {'@'} etc.
 */
export const en = {
  settings: {
    title: "Settings",
    close: "Close settings",
    temperature: "Temperature",
    temperatureSlider: "Temperature slider",
    temperatureHint: "Lower is more focused, higher more varied. Empty: the model's default (nothing is sent).",
    useDefault: "Use the model's default",
    default: "default",
    maxTokens: "Max tokens",
    maxTokensHint: "The longest answer to generate. Empty: no limit beyond the model's.",
    streaming: "Enable streaming",
    streamingHint: "Show the answer as it is written. Off: one request, the whole answer at the end.",
    theme: "Theme",
    themeSystem: "System",
    themeLight: "Light",
    themeDark: "Dark",
    language: "Language",
    languageAuto: "Browser",
    apiKey: "API key",
    keySaved: "saved in this browser",
    keyNone: "none",
    forgetKey: "Forget the key",
    keyPrompt: "Enter the key the gateway gave you (server.api_keys).",
    changeKey: "Change…",
    setKey: "Set a key…",
  },
};

type Widen<T> = { [K in keyof T]: T[K] extends string ? string : Widen<T[K]> };
export type Messages = Widen<typeof en>;
