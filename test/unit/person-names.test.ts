import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { personNameProblem, samePerson } from '../../workflows/person-names';

describe('names in decisions', () => {
  it('takes ordinary names in any one script', () => {
    for (const name of ['alice', 'Zoë Dupont', "O'Brien", 'j.smith@moneyflow.example', 'Иван Петров', '山田 太郎', 'やまだ タロウ 山田', 'Ελένη']) {
      assert.equal(personNameProblem(name), undefined, name);
    }
  });

  it('refuses invisible characters, other symbols and mixed scripts', () => {
    for (const name of ['alice\u200b', 'alice\u034f', 'alice\ufe0f', 'alice\u3164', '\u2800alice', 'al\u00adice', 'ali\nce', '$(touch x)', '']) {
      assert.match(personNameProblem(name) ?? 'accepted', /no invisible characters/, JSON.stringify(name));
    }
    assert.match(personNameProblem('\u0430lice') ?? 'accepted', /may not mix scripts \(Latin and Cyrillic\)/);
    assert.match(personNameProblem('ali\u03bfe') ?? 'accepted', /Latin and Greek/);
  });

  it('reads look-alikes as the same person, and different people as different', () => {
    for (const other of ['ALICE', ' alice ', '\uff21\uff2c\uff29\uff23\uff25', '\u0430\u04cf\u0456\u0441\u0435', 'al\u0131ce', 'a1ice', 'Alîce']) {
      assert.equal(samePerson('Alice', other), true, JSON.stringify(other));
    }
    for (const other of ['bob', 'alicia', 'alice2', 'Иван']) assert.equal(samePerson('Alice', other), false, other);
  });
});
