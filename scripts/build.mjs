#!/usr/bin/env node
// Builds dist/ from tsconfig.build.json (`npm run build`, and `prepare` through scripts/prepare.mjs).
// The published declarations leave out `@internal` declarations (`stripInternal`), and this build
// also leaves out the class members keyed by one of them (a method named by an internal symbol):
// tsc keeps such a member, and its key would then name something the .d.ts no longer declares,
// which breaks every importer that type-checks declaration files (`skipLibCheck: false`).
import ts from 'typescript';

const configPath = new URL('../tsconfig.build.json', import.meta.url).pathname;
const host = { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => fail([d]) };
const config = ts.getParsedCommandLineOfConfigFile(configPath, {}, host);
if (!config) process.exit(1);
if (config.errors.length > 0) fail(config.errors);

const program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
const emitted = program.emit(undefined, undefined, undefined, false, {
  afterDeclarations: [dropMembersKeyedByUndeclaredNames],
});
const diagnostics = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics];
if (diagnostics.length > 0 || emitted.emitSkipped) fail(diagnostics);

function fail(diagnostics) {
  const formatHost = {
    getCanonicalFileName: (name) => name,
    getCurrentDirectory: ts.sys.getCurrentDirectory,
    getNewLine: () => ts.sys.newLine,
  };
  process.stderr.write(ts.formatDiagnosticsWithColorAndContext(diagnostics, formatHost));
  process.exit(1);
}

/** The names a declaration file declares or imports at its top level. */
function declaredNames(file) {
  const names = new Set();
  for (const statement of file.statements) {
    if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) {
        if (ts.isIdentifier(declaration.name)) names.add(declaration.name.text);
      }
    } else if (ts.isImportDeclaration(statement)) {
      const clause = statement.importClause;
      if (clause?.name) names.add(clause.name.text);
      const bindings = clause?.namedBindings;
      if (bindings && ts.isNamespaceImport(bindings)) names.add(bindings.name.text);
      if (bindings && ts.isNamedImports(bindings)) for (const e of bindings.elements) names.add(e.name.text);
    } else if ('name' in statement && statement.name && ts.isIdentifier(statement.name)) {
      names.add(statement.name.text);
    }
  }
  return names;
}

/** A declaration transformer: drops class members whose computed key names nothing the file declares. */
function dropMembersKeyedByUndeclaredNames(context) {
  const { factory } = context;
  return (file) => {
    if (!ts.isSourceFile(file)) return file;
    const names = declaredNames(file);
    const keyedByUndeclared = (member) =>
      member.name !== undefined &&
      ts.isComputedPropertyName(member.name) &&
      ts.isIdentifier(member.name.expression) &&
      !names.has(member.name.expression.text);
    const visit = (node) => {
      if (ts.isClassDeclaration(node) && node.members.some(keyedByUndeclared)) {
        return factory.updateClassDeclaration(
          node,
          node.modifiers,
          node.name,
          node.typeParameters,
          node.heritageClauses,
          node.members.filter((member) => !keyedByUndeclared(member)),
        );
      }
      return node;
    };
    return ts.visitEachChild(file, visit, context);
  };
}
