#!/usr/bin/env node
import { NodeRuntime } from "@effect/platform-node";
import { main } from "./program.js";

// The one runtime of the command: failures are already written as one line by `main`.
NodeRuntime.runMain(main(process.argv), { disableErrorReporting: true });
