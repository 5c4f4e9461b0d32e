// Lint rules: typescript-eslint's recommended set over the sources; build output ignored. The
// layer arrows are enforced with no-restricted-imports zones: transport knows no RAID,
// coordination or controller; raid reaches into transport only for the BlockDevice side (devices,
// buffers including the aligned pool of background I/O, addresses), never its server; coordination
// imports no other layer; lib imports nothing from cmd, test, scripts or harness; scripts do not
// import test (the shared pieces live in harness/, which imports neither).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const UP_AND_OUT = { regex: '^(\\.\\./)+(cmd|test|scripts|harness)/', message: 'lib/ imports nothing from cmd/, test/, scripts/ or harness/.' };
const RAID_TRANSPORT = '(block-device|buffer-pool|aligned-pool|device-location|io-fence)\\.js$';

/** A zone: `files` may import none of `patterns` (lib's own rule added for lib files). */
function zone(files, ...patterns) {
  const all = files.every((f) => f.startsWith('lib/')) ? [UP_AND_OUT, ...patterns] : patterns;
  return { files, rules: { 'no-restricted-imports': ['error', { patterns: all }] } };
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  zone(['lib/**/*.ts']),
  zone(['lib/transport/**/*.ts'], { regex: '^\\.\\./(raid|coordination|controller)/', message: 'lib/transport serves any BlockDevice and knows no RAID, coordination or controller.' }),
  zone(['lib/raid/**/*.ts'],
    { regex: '^\\.\\./(coordination|controller)/', message: 'lib/raid knows no SQL and no controller.' },
    { regex: `^\\.\\./transport/(?!${RAID_TRANSPORT})`, message: 'lib/raid uses transport only for BlockDevice types, devices and their fence, buffers and addresses, never the NBD server side.' }),
  zone(['lib/coordination/**/*.ts'], { regex: '^\\.\\./(raid|controller|transport)/', message: 'lib/coordination holds no buffers and imports no other layer.' }),
  zone(['scripts/**/*.ts'], { regex: '^(\\.\\./)+test/', message: 'scripts/ do not import test/: shared helpers live in harness/.' }),
  zone(['harness/**/*.ts'], { regex: '^(\\.\\./)+(test|scripts)/', message: 'harness/ serves both test/ and scripts/ and imports neither.' }),
);
