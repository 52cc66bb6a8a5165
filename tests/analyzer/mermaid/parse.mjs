// Parse Mermaid diagrams with mermaid's own parser, the one that renders them.
//
// Input: a JSON list of diagram texts on stdin, or file paths as arguments.
// Output: a JSON list on stdout, one entry per diagram in input order:
//   {"ok": true, "type": "flowchart-v2", "nodes": [...], "edges": [...], "subgraphs": [...]} or
//   {"ok": true, "type": "sequence", "actors": [...], "messages": [...], "title": "..."} or
//   {"ok": false, "error": "..."}.
// The texts are what mermaid will draw, entity codes (#35;) decoded, so tests
// can check that every name survived escaping.
// Exit code 0 when every diagram parsed, 1 when any failed, 2 on bad input.
// mermaid needs a DOM (DOMPurify sanitizes labels), so it runs under jsdom.
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!DOCTYPE html><html><body></body></html>", { pretendToBeVisual: true });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.DOMParser = dom.window.DOMParser;
globalThis.Element = dom.window.Element;
globalThis.HTMLElement = dom.window.HTMLElement;
globalThis.SVGElement = dom.window.SVGElement;

const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

function readInput() {
  const args = process.argv.slice(2);
  if (args.length > 0) {
    return args.map((path) => readFileSync(path, "utf8"));
  }
  const parsed = JSON.parse(readFileSync(0, "utf8"));
  if (!Array.isArray(parsed) || !parsed.every((d) => typeof d === "string")) {
    throw new Error("stdin must be a JSON list of strings");
  }
  return parsed;
}

let diagrams;
try {
  diagrams = readInput();
} catch (error) {
  process.stderr.write(`parse.mjs: ${error.message}\n`);
  process.exit(2);
}

// mermaid swaps entity codes for placeholders before parsing and back when drawing.
function decode(text) {
  return String(text ?? "").replace(/\uFB02\xB0\xB0(\d+)\xB6\xDF/g, (_m, code) =>
    String.fromCodePoint(Number(code)),
  );
}

function contents(diagram) {
  const db = diagram.db;
  if (diagram.type === "flowchart-v2") {
    return {
      nodes: [...db.getVertices().values()].map((v) => ({
        id: v.id,
        text: decode(v.text),
        shape: v.type,
      })),
      edges: db.getEdges().map((e) => ({
        from: e.start,
        to: e.end,
        text: decode(e.text),
        stroke: e.stroke,
      })),
      subgraphs: db.getSubGraphs().map((s) => ({
        id: s.id,
        title: decode(s.title),
        nodes: [...s.nodes],
      })),
    };
  }
  if (diagram.type === "sequence") {
    return {
      title: decode(db.getDiagramTitle()),
      actors: [...db.getActors().values()].map((a) => ({
        id: a.name,
        text: decode(a.description),
        type: a.type,
      })),
      messages: db.getMessages().map((m) => ({
        from: m.from,
        to: m.to,
        text: decode(m.message),
        type: m.type,
      })),
    };
  }
  return {};
}

const results = [];
for (const text of diagrams) {
  try {
    // Parses the text as mermaid.parse() does, and keeps what it parsed for the checks.
    const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
    results.push({ ok: true, type: diagram.type, ...contents(diagram) });
  } catch (error) {
    results.push({ ok: false, error: String(error?.message ?? error) });
  }
}
// exitCode, not exit(): exit() drops what is still queued for a piped stdout.
process.stdout.write(JSON.stringify(results) + "\n");
process.exitCode = results.every((r) => r.ok) ? 0 : 1;
