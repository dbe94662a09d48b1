import { expect, test } from "vitest";
import { ResumePoint } from "../src/resume.js";

test("accepts ids in order and drops repeats and older ones", () => {
  const point = new ResumePoint();
  const ids = ["000000000002-5", "000000000002-5", "000000000001-9", "000000000003-1", "000000000010-0"];
  expect(ids.map((id) => point.accept(id))).toEqual([true, false, false, true, true]);
  expect(point.lastEventId).toBe("000000000010-0");
});

test("starts after the id it was given", () => {
  const point = new ResumePoint("000000000005-0");
  expect(point.accept("000000000005-0")).toBe(false);
  expect(point.accept("000000000006-0")).toBe(true);
});
