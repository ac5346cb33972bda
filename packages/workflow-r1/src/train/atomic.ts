import * as fs from "node:fs";
import * as path from "node:path";

/** fsync a directory so a rename inside it survives a crash. */
export const fsyncDirectory = (dir: string): void => {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
};

/**
 * Write a file so that a reader (or a resumed run after `kill -9`) sees either the old content or
 * the new one, never a torn file: write a temp file in the same directory, fsync, rename, fsync dir.
 */
export const writeFileAtomic = (file: string, data: string | Uint8Array): void => {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`);
  const fd = fs.openSync(temp, "w");
  try {
    if (typeof data === "string") fs.writeSync(fd, data);
    else fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temp, file);
  fsyncDirectory(dir);
};

/** Make a file written by someone else (e.g. the native learner) durable, then move it into place atomically. */
export const commitFile = (temp: string, file: string): void => {
  const fd = fs.openSync(temp, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temp, file);
  fsyncDirectory(path.dirname(file));
};
