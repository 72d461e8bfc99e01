/** YAML for the deploy tests, through the maintained `yaml` package (YAML 1.2, as kubectl reads it). */
import {parse, parseAllDocuments} from 'yaml';

export type Yaml = null | boolean | number | string | Yaml[] | {[key: string]: Yaml};

/** Every document of a multi-document file; a syntax error names the file. */
export function parseYamlDocuments(text: string, name = 'yaml'): Yaml[] {
  return parseAllDocuments(text).map((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${name} (document ${i + 1}): ${doc.errors[0].message}`);
    return doc.toJS() as Yaml;
  });
}

export function parseYaml(text: string, name = 'yaml'): Yaml {
  try {
    return parse(text) as Yaml;
  } catch (error) {
    throw new Error(`${name}: ${(error as Error).message}`);
  }
}
