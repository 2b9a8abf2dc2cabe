/** Types of bin/worker-settings.js (plain JavaScript: it runs before any build). */
export declare const NODE_FLAGS: readonly string[];
export declare const ENV: Readonly<Record<string, string>>;
export declare function missingFlags(execArgv?: readonly string[], env?: NodeJS.ProcessEnv): string[];
export declare function hasWorkerSettings(execArgv?: readonly string[], env?: NodeJS.ProcessEnv): boolean;
export declare function workerEnv(env?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
