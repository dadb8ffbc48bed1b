/** The UI's German words (du-form, as most chat apps). Every key of en.ts, none more. */
import type { Messages } from "./en";

export const de: Messages = {
  settings: {
    title: "Einstellungen",
    close: "Einstellungen schließen",
    temperature: "Temperatur",
    temperatureSlider: "Temperatur-Regler",
    temperatureHint: "Niedriger ist fokussierter, höher abwechslungsreicher. Leer: die Vorgabe des Modells (es wird nichts gesendet).",
    useDefault: "Vorgabe des Modells verwenden",
    default: "Vorgabe",
    maxTokens: "Max. Tokens",
    maxTokensHint: "Die längste Antwort, die erzeugt wird. Leer: keine Grenze außer der des Modells.",
    streaming: "Streaming aktivieren",
    streamingHint: "Zeigt die Antwort, während sie geschrieben wird. Aus: eine Anfrage, die ganze Antwort am Ende.",
    theme: "Design",
    themeSystem: "System",
    themeLight: "Hell",
    themeDark: "Dunkel",
    language: "Sprache",
    languageAuto: "Browser",
    apiKey: "API-Schlüssel",
    keySaved: "in diesem Browser gespeichert",
    keyNone: "keiner",
    forgetKey: "Schlüssel vergessen",
    keyPrompt: "Gib den Schlüssel ein, den du vom Gateway bekommen hast (server.api_keys).",
    changeKey: "Ändern…",
    setKey: "Schlüssel festlegen…",
  },
};
