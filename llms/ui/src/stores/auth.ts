/**
 * The gateway's API key, when it asks for one: kept in localStorage, sent as
 * `Authorization: Bearer`. A 401 opens the key dialog; every request waiting on it continues
 * when a key is saved, and asks again if that key is refused too. Whoever listens
 * (`onKeyChange`: the model list) hears of every key saved, from the dialog or from Settings.
 */
import { reactive } from "vue";
import { browserStorage } from "./settings";

export const KEY_STORAGE = "llms.apiKey";

export interface AuthState {
  key: string | null;
  /** The dialog is open. */
  asking: boolean;
  /** Why it asks ("The saved key was rejected"). */
  reason: string;
}

export class AuthStore {
  readonly state: AuthState;
  private waiters: ((key: string | null) => void)[] = [];
  private listeners: ((key: string) => void)[] = [];

  constructor(private readonly storage: Storage | null = browserStorage()) {
    let key: string | null = null;
    try {
      key = storage?.getItem(KEY_STORAGE) ?? null;
    } catch {
      key = null;
    }
    this.state = reactive({ key, asking: false, reason: "" });
  }

  get key(): string | null {
    return this.state.key;
  }

  /** Ask the user for a key; resolves with it, or null if they cancel. One dialog for all. */
  ask(reason: string): Promise<string | null> {
    this.state.reason = reason;
    this.state.asking = true;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  submit(key: string): void {
    const value = key.trim();
    if (!value) return;
    this.state.key = value;
    try {
      this.storage?.setItem(KEY_STORAGE, value);
    } catch {
      // kept in memory only
    }
    this.settle(value);
    for (const listener of this.listeners) listener(value);
  }

  /** Call `listener` with every key saved. */
  onKeyChange(listener: (key: string) => void): void {
    this.listeners.push(listener);
  }

  cancel(): void {
    this.settle(null);
  }

  forget(): void {
    this.state.key = null;
    try {
      this.storage?.removeItem(KEY_STORAGE);
    } catch {
      // nothing stored
    }
  }

  private settle(value: string | null): void {
    this.state.asking = false;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve(value);
  }
}
