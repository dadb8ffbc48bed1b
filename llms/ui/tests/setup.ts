// IndexedDB for the thread store's tests (happy-dom has none).
import "fake-indexeddb/auto";
