// Calls exported functions of a web/ module for the Python tests: reads {module, calls: [{fn, args}]} as JSON
// on stdin and prints [{result} | {error}] as JSON. Byte arrays travel as {"u8": base64} both ways.
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const decode = (value) => {
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === "object") {
    if ("u8" in value) return new Uint8ClampedArray(Buffer.from(value.u8, "base64"));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
  }
  return value;
};
const encode = (value) => {
  if (ArrayBuffer.isView(value)) return { u8: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  if (Array.isArray(value)) return value.map(encode);
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encode(v)]));
  return value;
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const request = JSON.parse(input);
const module = await import(pathToFileURL(resolve(request.module)).href);
const answers = request.calls.map(({ fn, args }) => {
  try {
    return { result: encode(module[fn](...decode(args))) };
  } catch (error) {
    return { error: `${error.name}: ${error.message}` };
  }
});
console.log(JSON.stringify(answers));
