// The same classification from Node, through the enclave's attested-TLS ingress: verify the
// attestation document the enclave serves on the TLS connection it describes (js/, the package
// @shield-nitro/verify), then send every request on a keep-alive agent pinned to that key.
//
//   node client.mjs https://127.0.0.1:PORT testset.bin reference.json ROOT.pem 0=HEX 1=HEX 2=HEX
//
// Prints one JSON line like client.py; exits 1 when the answers differ from the reference or the
// enclave is refused, 3 when it cannot be reached.
import { readFileSync } from "node:fs";
import https from "node:https";
import { attestTls } from "../../js/src/attested-tls.js";

const [url, testsetPath, referencePath, rootPath, ...pcrArgs] = process.argv.slice(2);
const pcrs = Object.fromEntries(pcrArgs.map((a) => a.split("=")));

function testset(path) {
  const data = readFileSync(path);
  if (data.subarray(0, 4).toString() !== "SNTS") throw new Error(`${path} is not an SNTS test set`);
  const count = data.readUInt32LE(8), features = data.readUInt32LE(12);
  const images = [];
  for (let i = 0; i < count; i++) images.push(data.subarray(16 + i * 4 * features, 16 + (i + 1) * 4 * features));
  const labels = [...data.subarray(16 + count * 4 * features, 16 + count * 4 * features + count)];
  return { images, labels };
}

function post(agent, target, body) {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL("/classify", target), { method: "POST", agent, headers: { "content-length": body.length } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => res.statusCode === 200 ? resolve(JSON.parse(Buffer.concat(chunks))) : reject(new Error(`HTTP ${res.statusCode}`)));
      });
    req.on("error", reject);
    req.end(body);
  });
}

try {
  const attested = await attestTls(url, { pcrs }, { root: readFileSync(rootPath, "utf8") });
  const { images, labels } = testset(testsetPath);
  const reference = JSON.parse(readFileSync(referencePath, "utf8")).predictions;
  const predictions = [];
  for (let i = 0; i < images.length; i += 40)
    predictions.push(...(await post(attested.agent, url, Buffer.concat(images.slice(i, i + 40)))).predictions);
  attested.agent.destroy();
  const correct = predictions.filter((p, i) => p === labels[i]).length;
  const same = predictions.length === reference.length && predictions.every((p, i) => p === reference[i]);
  console.log(JSON.stringify({ images: predictions.length, correct, accuracy: +(correct / labels.length).toFixed(4),
    matches_reference: same, pin: attested.curlPin }));
  process.exit(same ? 0 : 1);
} catch (e) {
  console.error(`client.mjs: ${e.message}`);
  process.exit(e.code === "verification" || e.code === "policy" || e.code === "format" ? 1 : 3);
}
