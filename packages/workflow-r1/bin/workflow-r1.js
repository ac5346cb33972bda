#!/usr/bin/env node
// The installed command. A committed file rather than dist/cli.js itself: npm links a package's
// commands at install time, before `prepare` has built dist/, and skips a link whose target is missing.
await import("../dist/cli.js");
