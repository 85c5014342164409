// Differential-test oracle for internal/fhirpath: evaluates FHIRPath with the
// reference implementation npm fhirpath@5.2.2 and its R4 model.
//
// Protocol (one JSON object per line, both directions):
//   in:  {"resource": {...}, "exprs": ["Patient.name", ...]}
//   out: {"results": [{"values": [...], "types": ["FHIR.HumanName", ...],
//                      "asRewrite": true?} | {"error": "..."}, ...]}
//
// %resource is the input resource. resolve() is replaced by a function with
// the same rule as the Go engine, because the library's own resolve() fetches
// over HTTP: the target type comes from the reference text ("Type/id",
// "Type/id/_history/v", an absolute URL ending in one of those, or "#id"
// naming a contained resource), else from Reference.type; the result is a
// stub {resourceType, id}. Nothing is fetched.
//
// FHIRPath (and this library) reject "as" on a collection of several items;
// the Go engine filters like ofType() instead. When the library fails with
// that error, the expression is re-evaluated with "X as T" and ".as(T)"
// rewritten to ofType(T), and the result is flagged asRewrite.
'use strict';
const fhirpath = require('fhirpath');
const model = require('fhirpath/fhir-context/r4');
// ResourceNode is internal to the package (not in its "exports"), so it is
// loaded by file path next to the main module.
const { ResourceNode } = require(require('path').join(require('path').dirname(require.resolve('fhirpath')), 'types.js'));
const readline = require('readline');

let current = null; // the resource being evaluated, for "#id" references

function isTypeName(s) {
  return typeof s === 'string' && /^[A-Z][A-Za-z]*$/.test(s);
}

function parseRef(ref) {
  if (ref.startsWith('#')) {
    const frag = ref.slice(1);
    for (const c of (current && current.contained) || []) {
      if (c && c.id === frag && isTypeName(c.resourceType)) return [c.resourceType, frag];
    }
    return null;
  }
  const cut = ref.search(/[?#]/);
  if (cut >= 0) ref = ref.slice(0, cut);
  let segs = ref.split('/');
  if (segs.length >= 4 && segs[segs.length - 2] === '_history') segs = segs.slice(0, -2);
  const n = segs.length;
  if (n < 2 || segs[n - 1] === '' || !isTypeName(segs[n - 2])) return null;
  return [segs[n - 2], segs[n - 1]];
}

function target(v) {
  let ref = '', declared = '';
  if (v && typeof v === 'object') {
    if (typeof v.reference === 'string') ref = v.reference;
    if (typeof v.type === 'string') declared = v.type;
  } else if (typeof v === 'string') {
    ref = v;
  }
  if (ref !== '') {
    const r = parseRef(ref);
    if (r) return r;
  }
  if (isTypeName(declared)) return [declared, ''];
  return null;
}

const userInvocationTable = {
  resolve: {
    fn: function (coll) {
      const out = [];
      for (const item of coll || []) {
        const data = item instanceof ResourceNode ? item.data : item;
        const t = target(data);
        if (!t) continue;
        const stub = { resourceType: t[0] };
        if (t[1] !== '') stub.id = t[1];
        out.push(ResourceNode.makeResNode(this, stub, null, null, null, null));
      }
      return out;
    },
  },
};

const compiled = new Map();
function get(expr) {
  let f = compiled.get(expr);
  if (!f) {
    f = fhirpath.compile(expr, model, { resolveInternalTypes: false, userInvocationTable });
    compiled.set(expr, f);
  }
  return f;
}

function rewriteAs(expr) {
  return expr
    .replace(/\(([^()]*?) as ([A-Za-z.]+)\)/g, '(($1).ofType($2))')
    .replace(/\.as\(/g, '.ofType(');
}

function run(resource, expr) {
  const res = get(expr)(resource, { resource });
  return {
    values: fhirpath.resolveInternalTypes(res),
    types: fhirpath.types(res),
  };
}

function evalOne(resource, expr) {
  try {
    return run(resource, expr);
  } catch (e) {
    const msg = String(e && e.message || e);
    if (msg.includes("Expected singleton on left side of 'as'")) {
      try {
        const r = run(resource, rewriteAs(expr));
        r.asRewrite = true;
        return r;
      } catch (e2) {
        return { error: String(e2 && e2.message || e2) };
      }
    }
    return { error: msg };
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  if (!line) return;
  const req = JSON.parse(line);
  current = req.resource;
  const results = req.exprs.map((e) => evalOne(req.resource, e));
  process.stdout.write(JSON.stringify({ results }) + '\n');
});
