import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', '.tap/'] },
  ...tseslint.configs.recommended,
  {
    files: ['lib/**/*.ts'],
    rules: {
      // lib/ never ends the process; cli/ turns results into exit statuses.
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'exit', message: 'lib/ must not call process.exit' },
      ],
    },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
);
