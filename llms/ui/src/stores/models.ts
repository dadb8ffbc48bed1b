/** The models the gateway serves (`GET /v1/models`), grouped by provider for the picker. */
import { computed, reactive, type ComputedRef } from "vue";
import type { Gateway } from "../api/client";
import { ApiError } from "../api/errors";
import type { ModelCard } from "../api/types";
import type { AuthStore } from "./auth";
import type { Settings } from "./settings";
import { t } from "../i18n";

export interface ModelGroup {
  provider: string;
  models: ModelCard[];
}

export interface ModelsState {
  models: ModelCard[];
  loading: boolean;
  loaded: boolean;
  error: string | null;
}

export function groupModels(models: ModelCard[]): ModelGroup[] {
  const groups = new Map<string, ModelCard[]>();
  for (const model of models) {
    const provider = model.owned_by || "other";
    let list = groups.get(provider);
    if (!list) groups.set(provider, (list = []));
    list.push(model);
  }
  return [...groups.entries()].map(([provider, list]) => ({
    provider,
    models: [...list].sort((a, b) => a.id.localeCompare(b.id)),
  }));
}

export class ModelsStore {
  readonly state: ModelsState = reactive({ models: [], loading: false, loaded: false, error: null });
  readonly groups: ComputedRef<ModelGroup[]> = computed(() => groupModels(this.state.models));
  /** The model to use: the last one picked while the gateway still serves it, else the first. */
  readonly selected: ComputedRef<string | null> = computed(() => {
    const chosen = this.settings.model;
    const models = this.state.models;
    if (chosen && (models.some((m) => m.id === chosen) || !this.state.loaded)) return chosen;
    return models[0]?.id ?? null;
  });

  constructor(
    private readonly gateway: Gateway,
    private readonly settings: Settings,
    private readonly auth: AuthStore,
  ) {}

  select(id: string): void {
    this.settings.model = id;
  }

  async load(): Promise<void> {
    this.state.loading = true;
    try {
      let models: ModelCard[] | null = null;
      let asked = false;
      while (models === null) {
        try {
          models = await this.gateway.models();
        } catch (error) {
          if (!(error instanceof ApiError) || error.status !== 401) throw error;
          // Asked again for as long as the key is refused, until the user cancels.
          const reason = asked
            ? t("notice.keyRefusedAgain")
            : this.auth.key
              ? t("notice.keyRefused")
              : error.message;
          asked = true;
          const key = await this.auth.ask(reason);
          if (key === null) throw error;
        }
      }
      this.state.models = models;
      this.state.error = null;
    } catch (error) {
      this.state.error = error instanceof Error ? error.message : String(error);
    } finally {
      this.state.loading = false;
      this.state.loaded = true;
    }
  }
}
